"""The in-toto statement's shape, from the run's facts alone."""

from __future__ import annotations

import json
from importlib.metadata import version

from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.provenance import parse_toolchain, provenance_key, statement

from tests.helpers import VALID

MEASURED = {"node": "v20.19.1", "package-manager": "pnpm@9.15.0", "lockfile": "pnpm-lock.yaml",
            "lockfile-sha256": "b" * 64}
REPORTED = "package-manager-version=0.0.0-FORGED\nnode-version=v0.0.0-RT-FORGED\nlockfile=pnpm-lock.yaml\nlockfile-sha256=" + "0" * 64


def _statement(conf: dict[str, str], toolchain: dict[str, str] = MEASURED) -> dict:
    p = PipelineParameters.from_conf({**VALID, **conf}, workspace="/srv/builds/run")
    return statement(p=p, subjects={"w/b.js": "a" * 64, "w/1-x.wasm": "c" * 64}, commit="d" * 40,
                     toolchain=toolchain, reported={**parse_toolchain(REPORTED), "wrangler": "4.86.0"},
                     dag_id="build", run_id="manual_1", execution_mode="local",
                     started="2026-11-30T10:00:00+00:00", finished="2026-11-30T10:00:09+00:00")


def test_the_statement_names_each_stored_file_the_commit_the_lockfile_and_the_builder() -> None:
    document = _statement({"project-root": "services/api", "package-manager-directory": "."})
    assert [s["name"] for s in document["subject"]] == ["w/1-x.wasm", "w/b.js"]
    definition = document["predicate"]["buildDefinition"]
    assert definition["resolvedDependencies"][1] == {"name": "pnpm-lock.yaml", "digest": {"sha256": "b" * 64}}
    assert definition["resolvedDependencies"][0]["digest"] == {"gitCommit": "d" * 40}
    assert "workspace" not in definition["externalParameters"], "the worker's paths are not the build's inputs"
    assert document["predicate"]["runDetails"]["builder"]["version"] == {
        "cloudflare-worker-pipeline": version("airflow-provider-cloudflare-worker-pipeline"),  # the installed package's
        "node": "v20.19.1", "package-manager": "pnpm@9.15.0"}


def test_what_the_build_reported_is_kept_apart_from_what_the_worker_measured() -> None:
    document = _statement({})
    text = json.dumps({key: value for key, value in document["predicate"]["runDetails"].items()
                       if key != "reportedByBuild"}) + json.dumps(document["predicate"]["buildDefinition"])
    assert "FORGED" not in text and "0" * 64 not in text, "a sandbox's report reached the measured fields"
    reported = document["predicate"]["runDetails"]["reportedByBuild"]
    assert reported["node-version"] == "v0.0.0-RT-FORGED" and reported["wrangler"] == "4.86.0"
    assert "not measured by the platform" in reported["note"]


def test_a_lockfile_in_a_subdirectory_is_named_from_the_repository_root_and_none_is_left_out() -> None:
    nested = _statement({"project-root": "services/api"})
    assert nested["predicate"]["buildDefinition"]["resolvedDependencies"][1]["name"] == "services/api/pnpm-lock.yaml"
    without = _statement({}, toolchain={"node": "v20.19.1", "package-manager": "npm@10.8.2"})
    assert len(without["predicate"]["buildDefinition"]["resolvedDependencies"]) == 1
    assert provenance_key("w/b.js") == "w/b.js.intoto.json"
