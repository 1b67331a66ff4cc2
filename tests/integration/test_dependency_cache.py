"""The shared dependency cache: a second service with the same dependencies installs from it, and
a cache a build corrupted (as a hostile install script could) is detected by the package manager
and does not change what the next build ships."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import FIXTURES, REPO
from tests.helpers import conf_for, failure_output, hello_worker_variant, objects_in


def cache_files(kind: str) -> list[Path]:
    root = Path(os.environ["AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__DEPENDENCY_CACHE_DIR"])
    return [path for path in root.glob(f"*/{kind}/**/*") if path.is_file()]


@pytest.mark.parametrize("fixture,kind,tampered", [
    ("hello-worker", "npm", "_cacache/content-v2"),
    ("pnpm", "pnpm-store", "files"),
])
def test_a_corrupted_shared_cache_is_refetched_and_the_bundle_is_unchanged(
        fixture, kind, tampered, pipeline_dag, git_server, connections, bucket, s3_server, s3_client, capfd) -> None:
    source = REPO / "examples" / "hello-worker" if fixture == "hello-worker" else FIXTURES / "projects" / fixture
    first = run_pipeline(pipeline_dag, conf_for(git_server.publish(f"cache-a-{kind}", source).url, bucket,
                                                s3_server.endpoint_url, r2_object_key="a/build.js"))
    assert first.state == "success", first.task_states
    assert "install: " + ("npm cache" if kind == "npm" else "pnpm store") + " in " in failure_output(capfd)
    contents = [path for path in cache_files(kind) if tampered in str(path)]
    assert contents, f"the first install filled the shared {kind} cache"
    for path in contents:  # what a hostile postinstall could do to the shared cache
        path.chmod(0o644)
        path.write_bytes(b"module.exports = 'poisoned';\n")

    second = run_pipeline(pipeline_dag, conf_for(git_server.publish(f"cache-b-{kind}", source).url, bucket,
                                                 s3_server.endpoint_url, r2_object_key="b/build.js"))

    assert second.state == "success", second.task_states
    stored = objects_in(s3_client, bucket)
    assert stored["b/build.js"] == stored["a/build.js"], "the same bytes as before the cache was tampered with"
    assert b"poisoned" not in stored["b/build.js"]


def test_install_scripts_never_see_the_shared_cache(pipeline_dag, git_server, connections, bucket, s3_server, tmp_path,
                                                    capfd) -> None:
    """What issue 19 found: a postinstall rewrote the pnpm store's index, and the next pnpm service
    shipped its code. Install scripts now run after the fetch, in a sandbox without the cache."""
    root = Path(os.environ["AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__DEPENDENCY_CACHE_DIR"])
    package = json.loads((REPO / "examples/hello-worker/package.json").read_text())
    package["scripts"]["postinstall"] = (f"for d in {root}/*/; do mkdir -p \"$d/pnpm-store/poison\" && echo wrote $d; "
                                         "done; true")
    project = hello_worker_variant(tmp_path, "cache-poisoner", files={"package.json": json.dumps(package, indent=2)})

    run = run_pipeline(pipeline_dag, conf_for(git_server.publish("cache-poisoner", project).url, bucket,
                                              s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    assert "install: npm cache in " in failure_output(capfd), "the fetch used the shared cache"
    assert any(root.glob("*/npm")), "the fetch filled it"
    assert not list(root.glob("*/pnpm-store/poison")), "the postinstall wrote into the shared cache"


def test_a_cache_over_its_quota_is_emptied_before_the_fetch(pipeline_dag, git_server, connections, bucket, s3_server,
                                                            monkeypatch, capfd) -> None:
    source = REPO / "examples" / "hello-worker"
    first = run_pipeline(pipeline_dag, conf_for(git_server.publish("quota-a", source).url, bucket, s3_server.endpoint_url,
                                                r2_object_key="quota/a.js"))
    assert first.state == "success", first.task_states
    assert cache_files("npm"), "the first install filled the cache"
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__DEPENDENCY_CACHE_MAX_MB", "1")
    capfd.readouterr()

    second = run_pipeline(pipeline_dag, conf_for(git_server.publish("quota-b", source).url, bucket,
                                                 s3_server.endpoint_url, r2_object_key="quota/b.js"))

    assert second.state == "success", second.task_states
    assert "over its quota of 1 MiB (setting dependency_cache_max_mb): emptied" in failure_output(capfd)
    assert cache_files("npm"), "the fetch after the eviction filled it again"
