"""The package managers' own hooks, as a hostile repository would use them (issue 19, item 8).

Each hook runs ``tests/fixtures/hostile/escape.sh``, which probes the worker's loopback and, where
the stage has an egress proxy, asks it for the worker's loopback and for a public host that is not
a registry; whatever it finds ships in the bundle. The fetch, the only phase with a network, runs
none of them: a ``.pnpmfile.cjs`` is ignored there (``--ignore-pnpmfile``), a ``yarnPath`` release
never runs (``YARN_IGNORE_PATH``), Yarn plugins are refused naming the file, and a git
dependency (whose ``prepare`` would run) cannot be fetched from a host that is no registry.
Before the two-phase install each of these ran with the network. A deployment that allows Yarn's
repository code (``allow_yarn_repository_code``) runs plugins and ``yarnPath``, and they still reach
nothing but the registries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from examples.local_stack.dag_run import fast_retries, run_pipeline
from tests.conftest import FIXTURES, REPO
from tests.helpers import SETTING, conf_for, failure_output, objects_in, processes_with_environ


@pytest.fixture
def marker() -> Iterator[str]:
    """Names the daemon escape.sh leaves; any still running at the end is killed (and fails a test)."""
    value = uuid.uuid4().hex
    yield value
    for pid in processes_with_environ(value):
        os.kill(pid, signal.SIGKILL)


def hostile_copy(tmp_path: Path, fixture: str, port: int, marker: str, files: dict[str, str]) -> Path:
    """``fixture`` (a package-manager fixture) with escape.sh, a worker shipping its report, and ``files``."""
    project = tmp_path / f"{fixture}-{marker[:8]}"
    shutil.copytree(FIXTURES / "projects" / fixture, project)
    for relative, content in {
        "escape.sh": (FIXTURES / "hostile" / "escape.sh").read_text(),
        "src/index.ts": (FIXTURES / "hostile" / "index.ts").read_text(),
        "src/leak.js": 'export const report = "";\n',
        "targets.txt": "", "port.txt": str(port), "marker.txt": marker, **files,
    }.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(content)
    return project


def shipped_report(s3_client: object, bucket: str) -> str:
    return objects_in(s3_client, bucket)["my-worker/build.js"].decode()


RUN_ESCAPE = 'require("child_process").execSync("sh ./escape.sh {name}", {{ stdio: "inherit" }});\n'


def test_a_pnpmfile_never_runs_with_the_network(pipeline_dag, git_server, connections, bucket, s3_server, s3_client,
                                                tmp_path, marker) -> None:
    port = urlsplit(s3_server.endpoint_url).port
    pnpmfile = RUN_ESCAPE.format(name="pnpmfile") + "module.exports = { hooks: {} };\n"
    repo = git_server.publish("hostile-pnpmfile", hostile_copy(tmp_path, "pnpm", port, marker,  # type: ignore[arg-type]
                                                               {".pnpmfile.cjs": pnpmfile}))

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    report = shipped_report(s3_client, bucket)
    assert "pnpmfile proxy to" not in report, "the pnpmfile ran in the fetch, beside the egress proxy"
    assert "network: reached" not in report, report
    assert not processes_with_environ(marker), "a daemon outlived its stage"


def test_yarn_plugins_are_refused_naming_the_file(pipeline_dag, git_server, connections, bucket, s3_server, s3_client,
                                                 tmp_path, marker, capfd) -> None:
    port = urlsplit(s3_server.endpoint_url).port
    rc = (FIXTURES / "projects" / "yarn-berry" / ".yarnrc.yml").read_text()
    plugin = RUN_ESCAPE.format(name="plugin") + 'module.exports = { name: "evil", factory: () => ({}) };\n'
    repo = git_server.publish("hostile-yarn-plugin", hostile_copy(tmp_path, "yarn-berry", port, marker, {  # type: ignore[arg-type]
        ".yarnrc.yml": rc + "plugins:\n  - path: .yarn/plugins/evil.cjs\n", ".yarn/plugins/evil.cjs": plugin}))

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["install"] == "failed", run.task_states
    assert ".yarnrc.yml names Yarn plugins" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}


def test_a_yarn_path_release_is_never_run(pipeline_dag, git_server, connections, bucket, s3_server, s3_client,
                                          tmp_path, marker) -> None:
    port = urlsplit(s3_server.endpoint_url).port
    rc = (FIXTURES / "projects" / "yarn-berry" / ".yarnrc.yml").read_text()
    release = RUN_ESCAPE.format(name="yarnpath") + "process.exit(0);\n"  # a Yarn that installs nothing
    repo = git_server.publish("hostile-yarn-path", hostile_copy(tmp_path, "yarn-berry", port, marker, {  # type: ignore[arg-type]
        ".yarnrc.yml": rc + "yarnPath: .yarn/releases/yarn-evil.cjs\n", ".yarn/releases/yarn-evil.cjs": release}))

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    assert "yarnpath ran" not in shipped_report(s3_client, bucket), "the repository's yarnPath release ran"


def yarn_release(tmp_path: Path, version: str) -> str:
    """The text of Yarn ``version``'s release, as a repository vendoring it for ``yarnPath`` would hold it."""
    home = tmp_path / "corepack-home"
    env = {**os.environ, **json.loads(os.environ[SETTING + "INSTALL_ENV"]), "COREPACK_HOME": str(home)}
    subprocess.run(["corepack", f"yarn@{version}", "--version"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    return (home / "v1" / "yarn" / version / "yarn.js").read_text().removeprefix("#!/usr/bin/env node\n")


def test_allowed_yarn_plugins_and_yarn_path_run_and_reach_only_the_registries(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path, marker, monkeypatch) -> None:
    monkeypatch.setenv(SETTING + "ALLOW_YARN_REPOSITORY_CODE", "True")
    port = urlsplit(s3_server.endpoint_url).port
    rc = (FIXTURES / "projects" / "yarn-berry" / ".yarnrc.yml").read_text()
    version = json.loads((FIXTURES / "projects" / "yarn-berry" / "package.json").read_text())["packageManager"]
    plugin = RUN_ESCAPE.format(name="plugin") + 'module.exports = { name: "evil", factory: () => ({}) };\n'
    release = RUN_ESCAPE.format(name="yarnpath") + yarn_release(tmp_path, version.removeprefix("yarn@"))
    repo = git_server.publish("allowed-yarn-code", hostile_copy(tmp_path, "yarn-berry", port, marker, {  # type: ignore[arg-type]
        ".yarnrc.yml": rc + "plugins:\n  - path: .yarn/plugins/evil.cjs\nyarnPath: .yarn/releases/yarn-vendored.cjs\n",
        ".yarn/plugins/evil.cjs": plugin, ".yarn/releases/yarn-vendored.cjs": release}))

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    report = shipped_report(s3_client, bucket)
    for code in ("plugin", "yarnpath"):
        assert f"== {code} ran" in report, report  # both ran: the setting took effect
        # In the fetch, beside the egress proxy: it refuses the worker's loopback and a host that is no registry.
        assert f"{code} proxy to 127.0.0.1:{port}: HTTP/1.1 403" in report, report
        assert f"{code} proxy to example.com:443: HTTP/1.1 403" in report, report
    assert "network: reached" not in report, report
    assert not processes_with_environ(marker), "a daemon outlived its stage"


def test_a_git_dependency_and_its_prepare_are_not_fetched(pipeline_dag, git_server, connections, bucket, s3_server,
                                                          s3_client, tmp_path, marker, capfd) -> None:
    dependency = tmp_path / "evil-dependency"
    dependency.mkdir()
    (dependency / "package.json").write_text(json.dumps({
        "name": "evil-dependency", "version": "1.0.0", "scripts": {"prepare": "sh -c 'echo prepared > prepared.txt'"}}))
    evil = git_server.publish("evil-dependency", dependency)
    package = json.loads((REPO / "examples/hello-worker/package.json").read_text())
    package["dependencies"]["evil-dependency"] = evil.url  # git://127.0.0.1:<port>/evil-dependency.git
    project = tmp_path / "git-dependency"
    shutil.copytree(REPO / "examples" / "hello-worker", project)
    (project / "package-lock.json").unlink()  # npm install resolves it
    (project / "package.json").write_text(json.dumps(package, indent=2))
    repo = git_server.publish("hostile-git-dependency", project)

    with fast_retries(pipeline_dag, "install"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["install"] == "failed", run.task_states
    output = failure_output(capfd)
    assert "evil-dependency" in output and "npm install --ignore-scripts" in output, output[-3000:]
    assert "403" in output or "Forbidden" in output or "not allowed" in output, output[-3000:]
    assert objects_in(s3_client, bucket) == {}


def test_a_forged_toolchain_report_never_reaches_the_measured_provenance(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path, marker, monkeypatch) -> None:
    """A ``yarnPath`` release (allowed here) answers ``--version`` with a version of its choosing,
    as a ``postinstall`` once rewrote the recorded Node (issue 20): the statement's measured fields
    keep the declared Yarn and the lockfile git holds, and the forgery shows only as reported."""
    monkeypatch.setenv(SETTING + "ALLOW_YARN_REPOSITORY_CODE", "True")
    port = urlsplit(s3_server.endpoint_url).port
    fixture = FIXTURES / "projects" / "yarn-berry"
    declared = json.loads((fixture / "package.json").read_text())["packageManager"]
    release = ('if (process.argv.includes("--version")) { console.log("0.0.0-RT-FORGED"); process.exit(0); }\n'
               + yarn_release(tmp_path, declared.removeprefix("yarn@")))
    repo = git_server.publish("forged-toolchain", hostile_copy(tmp_path, "yarn-berry", port, marker, {  # type: ignore[arg-type]
        ".yarnrc.yml": (fixture / ".yarnrc.yml").read_text() + "yarnPath: .yarn/releases/yarn-forging.cjs\n",
        ".yarn/releases/yarn-forging.cjs": release}))

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    statement = json.loads(objects_in(s3_client, bucket)["my-worker/build.js.intoto.json"])
    details, definition = statement["predicate"]["runDetails"], statement["predicate"]["buildDefinition"]
    assert details["reportedByBuild"]["package-manager-version"] == "0.0.0-RT-FORGED", "the forgery ran"
    assert details["builder"]["version"]["package-manager"] == declared
    assert details["builder"]["version"]["node"] == subprocess.run(["node", "--version"], capture_output=True,
                                                                   text=True).stdout.strip()
    assert "FORGED" not in json.dumps(details["builder"]) + json.dumps(definition)
    lockfile = hashlib.sha256((fixture / "yarn.lock").read_bytes()).hexdigest()
    assert definition["resolvedDependencies"][1] == {"name": "yarn.lock", "digest": {"sha256": lockfile}}
