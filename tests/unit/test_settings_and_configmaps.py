"""Deployment settings and ConfigMap manifests: errors say which setting and what limit."""

from __future__ import annotations

import pytest
from cloudflare_worker_pipeline.config_maps import MAX_CONFIGMAP_BYTES, ConfigMapTooLargeError, config_map
from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError

SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"


def test_defaults_follow_the_spec(monkeypatch) -> None:
    for key in ("NAMESPACE", "R2_CONN_ID", "INSTALL_ENV", "ALLOW_FILE_GIT_URLS", "SANDBOX"):
        monkeypatch.delenv(SETTING + key, raising=False)
    settings = PipelineSettings.from_airflow_config()
    assert settings.namespace == "planton-cloud-pipelines"
    assert settings.r2_conn_id == "r2_default" and settings.kubernetes_conn_id == "kubernetes_default"
    assert settings.allow_file_git_urls is False and settings.install_env == {}
    assert settings.max_bundle_bytes == 64 * 1024 * 1024  # the ceiling; each run's bundle-size-limit-bytes is 10 MiB
    assert settings.sandbox == "bubblewrap", "repositories are untrusted unless the deployment says otherwise"


@pytest.mark.parametrize("key,value,message", [
    ("INSTALL_ENV", "not json", "install_env: expected a JSON object"),
    ("INSTALL_ENV", '{"A": 1}', "install_env: expected a JSON object of strings"),
    ("ALLOW_FILE_GIT_URLS", "maybe", "allow_file_git_urls: expected true or false"),
    ("MAX_BUNDLE_BYTES", "-5", "max_bundle_bytes: expected a positive number"),
    ("STAGE_TIMEOUT_SECONDS", "soon", "stage_timeout_seconds: expected a whole number"),
    ("EXECUTION_MODE", "docker", "execution_mode: expected one of local"),
    ("SANDBOX", "firejail", "sandbox: expected one of bubblewrap, none"),
    ("SANDBOX_READ_ONLY_PATHS", "opt/node", "sandbox_read_only_paths: expected absolute paths"),
    ("EGRESS_UPSTREAM_PROXY", "https://proxy:3128", r"egress_upstream_proxy: expected .* http://\[user:password@\]host:port"),
    ("POD_REGISTRY_PROXY", "http://user:pw@proxy:3128", r"pod_registry_proxy: expected an HTTP proxy as http://host:port"),
])
def test_bad_settings_name_the_setting(monkeypatch, key: str, value: str, message: str) -> None:
    monkeypatch.setenv(SETTING + key, value)
    with pytest.raises(SettingsError, match=message):
        PipelineSettings.from_airflow_config()


def test_config_map_manifest_carries_labels_and_data() -> None:
    manifest = config_map("n", "ns", {"a": "b"}, {"k": "v"})
    assert manifest == {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "n", "namespace": "ns", "labels": {"a": "b"}}, "data": {"k": "v"}}


def test_config_map_over_one_mebibyte_is_refused_with_size_and_limit() -> None:
    with pytest.raises(ConfigMapTooLargeError) as error:
        config_map("big", "ns", {}, {"prod": "x" * MAX_CONFIGMAP_BYTES})
    assert f"{MAX_CONFIGMAP_BYTES + 4} bytes" in str(error.value) and f"limit of {MAX_CONFIGMAP_BYTES} bytes" in str(error.value)


def test_every_declared_setting_is_documented_in_the_readme() -> None:
    from cloudflare_worker_pipeline.get_provider_info import DEFAULTS

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    assert [key for key in DEFAULTS if f"`{key}`" not in readme] == []


def test_the_provider_info_follows_airflows_schema() -> None:
    import json
    from pathlib import Path

    import jsonschema
    from airflow import providers_manager
    from cloudflare_worker_pipeline.get_provider_info import get_provider_info

    schema_file = providers_manager.__file__.replace("providers_manager.py", "provider_info.schema.json")
    jsonschema.validate(get_provider_info(), json.loads(Path(schema_file).read_text()))


def test_the_upstream_proxy_may_carry_credentials_and_both_egress_policies_leave_through_it(monkeypatch) -> None:
    from cloudflare_worker_pipeline.egress_policies import git_egress, registry_egress

    monkeypatch.setenv(SETTING + "EGRESS_UPSTREAM_PROXY", "http://builds:s3cret@proxy.internal:3128")
    settings = PipelineSettings.from_airflow_config()
    assert registry_egress(settings).upstream == git_egress(settings).upstream == "http://builds:s3cret@proxy.internal:3128"
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(registry_egress(settings))


def test_a_refused_upstream_proxy_is_named_without_its_password(monkeypatch) -> None:
    monkeypatch.setenv(SETTING + "EGRESS_UPSTREAM_PROXY", "http://builds:s3cret@proxy.internal/path")
    with pytest.raises(SettingsError, match="egress_upstream_proxy") as raised:
        PipelineSettings.from_airflow_config()
    assert "s3cret" not in str(raised.value) and "***" in str(raised.value)


def test_the_upstream_proxy_is_sensitive_so_a_command_may_supply_it(monkeypatch) -> None:
    monkeypatch.delenv(SETTING + "EGRESS_UPSTREAM_PROXY", raising=False)
    monkeypatch.setenv(SETTING + "EGRESS_UPSTREAM_PROXY_CMD", "echo http://builds:s3cret@proxy.internal:3128")
    assert PipelineSettings.from_airflow_config().egress_upstream_proxy == "http://builds:s3cret@proxy.internal:3128"
