"""The in-toto statement's shape, from the run's facts alone."""

from __future__ import annotations

from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.provenance import parse_toolchain, provenance_key, statement

from tests.helpers import VALID

TOOLCHAIN = "package-manager-version=9.15.0\nnode-version=v20.19.1\nlockfile=pnpm-lock.yaml\nlockfile-sha256=" + "b" * 64


def _statement(conf: dict[str, str], toolchain: str = TOOLCHAIN) -> dict:
    p = PipelineParameters.from_conf({**VALID, **conf}, workspace="/srv/builds/run")
    return statement(p=p, subjects={"w/b.js": "a" * 64, "w/1-x.wasm": "c" * 64}, commit="d" * 40,
                     toolchain=parse_toolchain(toolchain), wrangler_version="4.86.0", dag_id="build", run_id="manual_1",
                     execution_mode="local", started="2026-11-30T10:00:00+00:00", finished="2026-11-30T10:00:09+00:00")


def test_the_statement_names_each_stored_file_the_commit_the_lockfile_and_the_builder() -> None:
    document = _statement({"project-root": "services/api", "package-manager-directory": "."})
    assert [s["name"] for s in document["subject"]] == ["w/1-x.wasm", "w/b.js"]
    definition = document["predicate"]["buildDefinition"]
    assert definition["resolvedDependencies"][1] == {"name": "pnpm-lock.yaml", "digest": {"sha256": "b" * 64}}
    assert definition["resolvedDependencies"][0]["digest"] == {"gitCommit": "d" * 40}
    assert "workspace" not in definition["externalParameters"], "the worker's paths are not the build's inputs"
    assert document["predicate"]["runDetails"]["builder"]["version"] == {
        "cloudflare-worker-pipeline": document["predicate"]["runDetails"]["builder"]["version"]["cloudflare-worker-pipeline"],
        "wrangler": "4.86.0", "node": "v20.19.1", "package-manager": "9.15.0"}


def test_a_lockfile_in_a_subdirectory_is_named_from_the_repository_root_and_none_is_left_out() -> None:
    nested = _statement({"project-root": "services/api"})
    assert nested["predicate"]["buildDefinition"]["resolvedDependencies"][1]["name"] == "services/api/pnpm-lock.yaml"
    without = _statement({}, toolchain="node-version=v20.19.1\nlockfile=\n")
    assert len(without["predicate"]["buildDefinition"]["resolvedDependencies"]) == 1
    assert provenance_key("w/b.js") == "w/b.js.intoto.json"
