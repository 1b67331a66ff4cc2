"""The stage scripts under ``busybox sh``, the POSIX shell of node:20-alpine, with real git, npm,
corepack and kubectl. The pipeline runs these very files in both execution modes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from cloudflare_worker_pipeline.execution.base import stage_program

from examples.local_stack.git_daemon import git
from tests.conftest import FIXTURES

pytestmark = pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is installed by `make test`")

INSTALL_ENV = json.loads(os.environ["AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__INSTALL_ENV"])


def run(script: str, env: dict[str, str], results: Path) -> subprocess.CompletedProcess[str]:
    base = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        ["busybox", "sh", "-c", stage_program(script), script], env={**base, **env, "RESULTS_DIR": str(results)},
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def origin(tmp_path: Path) -> dict[str, str]:
    """A repository with two commits on main, a tag on the first, and a second branch."""
    repo = tmp_path / "origin"
    (repo / "services" / "api").mkdir(parents=True)
    (repo / "services" / "web").mkdir(parents=True)
    (repo / "services" / "api" / "a.txt").write_text("api v1\n")
    (repo / "services" / "web" / "w.txt").write_text("web\n")
    (repo / "root.txt").write_text("root\n")
    git("init", "--quiet", "--initial-branch", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "first", cwd=repo)
    git("tag", "v1", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    (repo / "services" / "api" / "a.txt").write_text("api v2\n")
    git("commit", "--quiet", "-am", "second", cwd=repo)
    second = git("rev-parse", "HEAD", cwd=repo)
    git("checkout", "--quiet", "-b", "release", first, cwd=repo)
    (repo / "release.txt").write_text("release\n")
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "on release", cwd=repo)
    release = git("rev-parse", "HEAD", cwd=repo)
    git("checkout", "--quiet", "main", cwd=repo)
    return {"url": f"file://{repo}", "first": first, "second": second, "release": release}


def checkout(origin: dict[str, str], tmp_path: Path, revision: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run("checkout.sh", {
        "GIT_URL": origin["url"], "GIT_REVISION": revision, "CHECKOUT_DIR": str(tmp_path / "co"),
        "GIT_ALLOW_PROTOCOL": "file", **env,
    }, tmp_path / "results")


@pytest.mark.parametrize("revision,expected", [("main", "second"), ("v1", "first"), ("first", "first"), ("short", "first")])
def test_checkout_resolves_branches_tags_and_full_or_short_shas(origin: dict[str, str], tmp_path: Path,
                                                                  revision: str, expected: str) -> None:
    rev = {"first": origin["first"], "short": origin["first"][:8]}.get(revision, revision)
    result = checkout(origin, tmp_path, rev)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "results" / "commit").read_text() == origin[expected]
    assert git("rev-parse", "HEAD", cwd=tmp_path / "co") == origin[expected]


def test_checkout_of_a_branch_is_shallow(origin: dict[str, str], tmp_path: Path) -> None:
    assert checkout(origin, tmp_path, "main").returncode == 0
    assert git("rev-list", "--count", "HEAD", cwd=tmp_path / "co") == "1"


def test_checkout_removes_what_an_earlier_try_left(origin: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "co").mkdir()
    (tmp_path / "co" / "stale.txt").write_text("left by a failed try")
    assert checkout(origin, tmp_path, "main").returncode == 0
    assert not (tmp_path / "co" / "stale.txt").exists()


def test_sparse_checkout_keeps_root_files_and_only_the_listed_directories(origin: dict[str, str], tmp_path: Path) -> None:
    result = checkout(origin, tmp_path, "main", SPARSE_CHECKOUT_DIRECTORIES="services/api")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "co" / "services" / "api" / "a.txt").read_text() == "api v2\n"
    assert (tmp_path / "co" / "root.txt").exists()
    assert not (tmp_path / "co" / "services" / "web").exists()


def test_git_branch_with_a_commit_on_it(origin: dict[str, str], tmp_path: Path) -> None:
    result = checkout(origin, tmp_path, origin["release"][:10], GIT_BRANCH="release")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results" / "commit").read_text() == origin["release"]
    head = checkout(origin, tmp_path, "release", GIT_BRANCH="release")
    assert head.returncode == 0 and (tmp_path / "co" / "release.txt").exists()


def test_git_branch_refuses_a_commit_that_is_not_on_it(origin: dict[str, str], tmp_path: Path) -> None:
    result = checkout(origin, tmp_path, origin["second"], GIT_BRANCH="release")
    assert result.returncode == 1
    assert f"ERROR: git-revision {origin['second']} is not a commit on git-branch release" in result.stderr


def test_missing_revision_fails_naming_it(origin: dict[str, str], tmp_path: Path) -> None:
    result = checkout(origin, tmp_path, "no-such-branch")
    assert result.returncode == 1
    assert "ERROR: git-revision no-such-branch not found" in result.stderr


def test_transports_outside_the_allowed_list_are_refused(origin: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = run("checkout.sh", {"GIT_URL": f"ext::sh -c touch% {marker}", "GIT_REVISION": "main",
                                 "CHECKOUT_DIR": str(tmp_path / "co")}, tmp_path / "results")
    assert result.returncode != 0
    assert not marker.exists()
    refused = checkout(origin, tmp_path, "main", GIT_ALLOW_PROTOCOL="https:ssh:git")
    assert refused.returncode != 0 and "transport 'file' not allowed" in refused.stderr


def test_shell_metacharacters_in_inputs_are_data_not_code(origin: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = checkout(origin, tmp_path, f"main$(touch {marker})`touch {marker}`;touch {marker}")
    assert result.returncode != 0
    assert not marker.exists()


def write_project(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


def install(project: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run("install.sh", {**INSTALL_ENV, "INSTALL_DIR": str(project)}, tmp_path / "results")


EMPTY_PACKAGE = json.dumps({"name": "p", "version": "1.0.0", "private": True})


def test_npm_ci_runs_for_package_lock(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", {"package.json": EMPTY_PACKAGE, "package-lock.json": json.dumps(
        {"name": "p", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
         "packages": {"": {"name": "p", "version": "1.0.0"}}})})
    result = install(project, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "package-lock.json found: npm ci" in result.stdout
    assert (tmp_path / "results" / "package-manager").read_text() == "npm"


def test_npm_ci_fails_when_lockfile_and_package_json_disagree(tmp_path: Path) -> None:
    package = json.dumps({"name": "p", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}})
    project = write_project(tmp_path / "p", {"package.json": package, "package-lock.json": json.dumps(
        {"name": "p", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
         "packages": {"": {"name": "p", "version": "1.0.0"}}})})
    assert install(project, tmp_path).returncode != 0


def test_package_json_alone_falls_back_to_npm_install(tmp_path: Path) -> None:
    result = install(write_project(tmp_path / "p", {"package.json": EMPTY_PACKAGE}), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "without a lockfile: npm install" in result.stdout


def test_no_package_json_skips_install_saying_so(tmp_path: Path) -> None:
    result = install(write_project(tmp_path / "p", {"README.md": "static"}), tmp_path)
    assert result.returncode == 0
    assert "nothing to install, skipping" in result.stdout
    assert (tmp_path / "results" / "package-manager").read_text() == "none"


@pytest.mark.parametrize("fixture,manager,command", [
    ("yarn-classic", "yarn-classic", "yarn install --frozen-lockfile"),
    ("yarn-berry", "yarn-berry", "yarn install --immutable"),
    ("pnpm", "pnpm", "pnpm install --frozen-lockfile"),
])
def test_lockfile_picks_the_package_manager(fixture: str, manager: str, command: str, tmp_path: Path) -> None:
    """Detection only: the lockfile is mangled so the frozen install stops before downloading."""
    project = tmp_path / fixture
    shutil.copytree(FIXTURES / "projects" / fixture, project)
    package = json.loads((project / "package.json").read_text())
    package["dependencies"]["is-number"] = "7.0.0"  # not in the lockfile: a frozen install must refuse
    (project / "package.json").write_text(json.dumps(package))
    result = install(project, tmp_path)
    assert command in result.stdout
    assert result.returncode != 0, "a frozen install must fail when package.json and the lockfile disagree"
    assert not (tmp_path / "results" / "package-manager").exists()


def test_bundle_without_a_wrangler_config_fails_with_the_spec_error(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", {"package.json": EMPTY_PACKAGE})
    result = run("bundle.sh", {"PROJECT_DIR": str(project), "INSTALL_DIR": str(project)}, tmp_path / "results")
    assert result.returncode == 1
    assert result.stderr.strip() == "ERROR: wrangler.toml not found in project root"


def test_bundle_without_wrangler_installed_says_how_to_fix_it(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", {"package.json": EMPTY_PACKAGE, "wrangler.toml": 'name = "x"\n'})
    result = run("bundle.sh", {"PROJECT_DIR": str(project), "INSTALL_DIR": str(project)}, tmp_path / "results")
    assert result.returncode == 1
    assert "add wrangler to the project's devDependencies" in result.stderr


def kustomization(directory: Path, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(body)


def test_kustomize_renders_each_overlay_to_its_own_file(tmp_path: Path) -> None:
    base = FIXTURES.parent.parent / "examples" / "hello-worker" / "_kustomize"
    result = run("kustomize.sh", {"KUSTOMIZE_DIR": str(base), "OUTPUT_DIR": str(tmp_path / "out")}, tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dev.yaml", "prod.yaml"]
    assert "name: hello-worker-prod" in (tmp_path / "out" / "prod.yaml").read_text()


def test_kustomize_without_overlays_renders_nothing(tmp_path: Path) -> None:
    result = run("kustomize.sh", {"KUSTOMIZE_DIR": str(tmp_path / "none"), "OUTPUT_DIR": str(tmp_path / "out")}, tmp_path / "r")
    assert result.returncode == 0
    assert "no overlays directory" in result.stdout
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failing_overlay_is_named_with_kustomize_error(tmp_path: Path) -> None:
    kustomization(tmp_path / "k" / "overlays" / "broken", "resources:\n  - ../../missing-base\n")
    result = run("kustomize.sh", {"KUSTOMIZE_DIR": str(tmp_path / "k"), "OUTPUT_DIR": str(tmp_path / "out")}, tmp_path / "r")
    assert result.returncode == 1
    assert "ERROR: kustomize build failed for overlay broken:" in result.stderr
    assert "missing-base" in result.stderr



def test_in_a_pod_results_stay_files_and_the_termination_message_stays_empty(origin: dict[str, str],
                                                                            tmp_path: Path) -> None:
    """The kubelet cuts a termination message at 4 KiB: results travel as files on the claim."""
    termination_log = tmp_path / "termination-log"
    result = checkout(origin, tmp_path, "main", TERMINATION_LOG=str(termination_log))
    assert result.returncode == 0, result.stderr
    assert not termination_log.exists() or termination_log.read_text() == ""
    assert (tmp_path / "results" / "commit").read_text() == origin["second"]


def test_in_a_pod_error_lines_reach_the_termination_message(tmp_path: Path) -> None:
    termination_log = tmp_path / "termination-log"
    project = write_project(tmp_path / "p", {"package.json": EMPTY_PACKAGE})
    result = run("bundle.sh", {"PROJECT_DIR": str(project), "INSTALL_DIR": str(project),
                               "TERMINATION_LOG": str(termination_log)}, tmp_path / "results")
    assert result.returncode == 1
    assert termination_log.read_text() == "ERROR: wrangler.toml not found in project root\n"


def test_a_retry_never_sees_an_earlier_trys_results(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "commit").write_text("an earlier try's commit")
    prelude = (resources.files("cloudflare_worker_pipeline") / "scripts" / "prelude.sh").read_text()
    completed = subprocess.run(["busybox", "sh", "-c", prelude + "\nprintf new > \"$RESULTS_DIR/other\"\n"],
                               capture_output=True, text=True, env={"PATH": os.environ["PATH"], "RESULTS_DIR": str(results)})
    assert completed.returncode == 0, completed.stderr
    assert sorted(p.name for p in results.iterdir()) == ["other"]


@pytest.mark.parametrize("asked", [False, True])
def test_submodules_are_fetched_only_when_asked(tmp_path: Path, asked: bool) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "lib.txt").write_text("from a submodule\n")
    git("init", "--quiet", "--initial-branch", "main", cwd=library)
    git("add", ".", cwd=library)
    git("commit", "--quiet", "-m", "library", cwd=library)
    app = tmp_path / "app"
    app.mkdir()
    (app / "README.md").write_text("app\n")
    git("init", "--quiet", "--initial-branch", "main", cwd=app)
    git("-c", "protocol.file.allow=always", "submodule", "--quiet", "add", f"file://{library}", "vendor/library", cwd=app)
    git("add", ".", cwd=app)
    git("commit", "--quiet", "-m", "app with a submodule", cwd=app)
    result = run("checkout.sh", {"GIT_URL": f"file://{app}", "GIT_REVISION": "main", "CHECKOUT_DIR": str(tmp_path / "co"),
                                 "GIT_ALLOW_PROTOCOL": "file", "GIT_SUBMODULES": "true" if asked else "false"},
                 tmp_path / "results")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "co" / "vendor" / "library" / "lib.txt").exists() is asked
