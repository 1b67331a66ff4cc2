"""The tenant map on its own: how it is read, and what it grants (:mod:`cloudflare_worker_pipeline.tenants`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloudflare_worker_pipeline.parameters import InvalidParameterError, PipelineParameters
from cloudflare_worker_pipeline.tenants import Tenant, TenantMapError, check_grants, load_tenants

PAYMENTS = {"repositories": ["https://git.example.com/payments/*", "git@git.example.com:payments/*.git"],
            "r2-object-key-prefixes": ["payments/"], "config-map-names": ["payments-*"]}
SEARCH = {"repositories": ["https://git.example.com/search/**"], "r2-object-key-prefixes": ["search/"],
          "config-map-names": ["search-artifact", "search-manifests"], "r2-bucket-names": ["search-workers"],
          "callers": ["catalogue"]}
MAP = {"team=payments": PAYMENTS, "team=search": SEARCH}


def tenants() -> tuple[Tenant, ...]:
    loaded = load_tenants(json.dumps(MAP))
    assert loaded is not None
    return loaded


def parameters(**overrides: str) -> PipelineParameters:
    conf = {"git-url": "https://git.example.com/payments/api.git", "r2-bucket-name": "workers",
            "r2-endpoint-url": "https://acct.r2.cloudflarestorage.com", "r2-object-key": "payments/{commit_sha}.js",
            "worker-script-artifact-config-map-name": "payments-artifact",
            "kustomize-manifests-config-map-name": "payments-manifests",
            "owner-identifier-label-key": "team", "owner-identifier-label-value": "payments"}
    conf.update(overrides)
    return PipelineParameters.from_conf(conf, workspace="/tmp/w")


def refused(params: PipelineParameters, caller: str | None = None) -> InvalidParameterError:
    with pytest.raises(InvalidParameterError) as raised:
        check_grants(params, tenants(), caller)
    return raised.value


def test_a_run_within_its_owners_grants_passes() -> None:
    check_grants(parameters(), tenants(), "anyone")  # payments lists no callers: any caller
    check_grants(parameters(**{"git-url": "git@git.example.com:payments/api.git"}), tenants(), None)
    check_grants(parameters(**{"git-url": "https://git.example.com/search/edge/api.git", "r2-bucket-name": "search-workers",
                               "owner-identifier-label-value": "search", "r2-object-key": "search/api.js",
                               "worker-script-artifact-config-map-name": "search-artifact",
                               "kustomize-manifests-config-map-name": "search-manifests"}), tenants(), "catalogue")


def test_another_owners_value_is_refused_for_this_repository_naming_the_owner_it_is_granted_to() -> None:
    error = refused(parameters(**{"owner-identifier-label-value": "search"}))
    assert error.parameter == "owner-identifier-label-value"
    assert "grants this repository to: team=payments" in str(error) and "team=search" in str(error)


def test_a_run_without_an_owner_label_is_refused_under_a_map() -> None:
    error = refused(parameters(**{"owner-identifier-label-key": "", "owner-identifier-label-value": ""}))
    assert error.parameter == "owner-identifier-label-value" and "no owner label" in str(error)


@pytest.mark.parametrize("url", [
    "https://git.example.com/other/api.git",  # no owner's repository
    "https://git.example.com/payments/team/api.git",  # * stays within one part
    "https://evil.example/git.example.com/payments/api.git",
    "https://git.example.com@evil.example/payments/api.git",
])
def test_a_repository_no_owner_is_granted_is_refused(url: str) -> None:
    assert refused(parameters(**{"git-url": url})).parameter == "git-url"


@pytest.mark.parametrize("url", ["https://git.example.com/payments/../search/api.git",
                                 "https://git.example.com/payments/./api.git",
                                 "https://git.example.com/payments/%2e%2e/search/api.git"])
def test_dot_segments_and_escapes_are_refused_before_matching(url: str) -> None:
    error = refused(parameters(**{"git-url": url}))
    assert error.parameter == "git-url" and "percent-escapes" in str(error)


def test_keys_config_maps_and_buckets_outside_the_grants_are_refused_naming_the_parameter() -> None:
    assert refused(parameters(**{"r2-object-key": "search/{commit_sha}.js"})).parameter == "r2-object-key"
    assert refused(parameters(**{"r2-object-key": "{commit_sha}/payments/x.js"})).parameter == "r2-object-key"
    assert refused(parameters(**{"worker-script-artifact-config-map-name": "search-artifact"})).parameter == \
        "worker-script-artifact-config-map-name"
    assert refused(parameters(**{"kustomize-manifests-config-map-name": "search-manifests"})).parameter == \
        "kustomize-manifests-config-map-name"
    search = parameters(**{"git-url": "https://git.example.com/search/api.git", "owner-identifier-label-value": "search",
                           "r2-object-key": "search/a.js", "worker-script-artifact-config-map-name": "search-artifact",
                           "kustomize-manifests-config-map-name": "search-manifests"})
    assert refused(search, "catalogue").parameter == "r2-bucket-name"


def test_each_additional_worker_is_held_to_the_same_grants() -> None:
    workers = [{"project-root": "b", "r2-object-key": "payments/b.js", "worker-script-artifact-config-map-name": "payments-b"},
               {"project-root": "c", "r2-object-key": "search/c.js", "worker-script-artifact-config-map-name": "payments-c"}]
    error = refused(parameters(**{"project-root": "a", "package-manager-directory": ".",
                                    "additional-workers": json.dumps(workers)}))
    assert error.parameter == "additional-workers[2].r2-object-key" and "payments/" in str(error)
    workers[1]["r2-object-key"], workers[1]["worker-script-artifact-config-map-name"] = "payments/c.js", "search-artifact"
    error = refused(parameters(**{"project-root": "a", "package-manager-directory": ".",
                                    "additional-workers": json.dumps(workers)}))
    assert error.parameter == "additional-workers[2].worker-script-artifact-config-map-name"


def test_callers_bind_who_may_trigger_and_a_scheduled_run_has_none() -> None:
    search = parameters(**{"git-url": "https://git.example.com/search/api.git", "owner-identifier-label-value": "search",
                           "r2-bucket-name": "search-workers", "r2-object-key": "search/a.js",
                           "worker-script-artifact-config-map-name": "search-artifact",
                           "kustomize-manifests-config-map-name": "search-manifests"})
    error = refused(search, "mallory")
    assert error.parameter == "owner-identifier-label-value" and "'mallory', who triggered this run" in str(error)
    check_grants(search, tenants(), "catalogue")
    check_grants(search, tenants(), None)


def test_the_setting_reads_inline_json_or_a_yaml_file_and_empty_means_no_map(tmp_path: Path) -> None:
    assert load_tenants("") is None and load_tenants("  ") is None
    path = tmp_path / "tenants.yaml"
    path.write_text("team=payments:\n  repositories: [https://git.example.com/payments/*]\n"
                    "  r2-object-key-prefixes: [payments/]\n  config-map-names: [payments-*]\n")
    assert load_tenants(str(path)) == (Tenant("team=payments", ("https://git.example.com/payments/*",), ("payments/",),
                                              ("payments-*",)),)


@pytest.mark.parametrize("value,says", [
    ("/nonexistent/tenants.yaml", "cannot read /nonexistent/tenants.yaml"),  # fails closed, never single-tenant
    ("{not json", "expected a JSON object"),
    ("{}", "at least one owner"),
    (json.dumps({"payments": PAYMENTS}), "'payments' is not an owner label key=value"),
    (json.dumps({"team=payments": {**PAYMENTS, "config-maps": ["x"]}}), "unknown field 'config-maps'"),
    (json.dumps({"team=payments": {**PAYMENTS, "repositories": []}}), "repositories: expected at least one entry"),
    (json.dumps({"team=payments": {**PAYMENTS, "callers": "catalogue"}}), "callers: expected a list"),
])
def test_a_map_that_cannot_be_read_refuses_every_run_naming_the_problem(value: str, says: str) -> None:
    with pytest.raises(TenantMapError, match="tenants") as raised:
        load_tenants(value)
    assert says in str(raised.value)
