"""A repository that attacks the worker building it, through the whole DAG (``dag.test()``).

Its npm ``postinstall`` and its Wrangler ``[build] command`` run ``tests/fixtures/hostile/escape.sh``,
which reads every process environment it can see, tries the worker's secret files and another
run's workspace, probes the network, writes ``git config --global`` and leaves a ``setsid`` daemon,
then writes all it found into the bundle. With the bubblewrap sandbox nothing of the worker shows
up in the uploaded object; with ``sandbox = none`` the same repository steals it, which is what
that setting gives up (and shows this test can fail).
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import REPO, SESSION_DIR
from tests.helpers import (
    conf_for,
    failure_output,
    hello_worker_variant,
    hostile_project,
    objects_in,
    processes_with_environ,
)

SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"


@pytest.fixture
def canaries(workspaces: Path) -> Iterator[dict[str, object]]:
    """Secrets where a worker keeps them: a process environment (as the scheduler and task runner
    hold AIRFLOW_CONN_*), a file beside airflow.cfg, and another run's workspace."""
    secret = f"CANARY-{uuid.uuid4().hex}"
    process = subprocess.Popen(["sleep", "300"], env={"PATH": os.environ["PATH"], "CANARY_SECRET": secret})
    config = SESSION_DIR / "airflow" / "canary.cfg"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"[database]\nsql_alchemy_conn = postgresql://airflow:{secret}@db/airflow\n")
    other_run = workspaces / "build_and_upload_cloudflare_worker" / "another-service-run" / "source" / "secret.txt"
    other_run.parent.mkdir(parents=True, exist_ok=True)
    other_run.write_text(secret)
    yield {"secret": secret, "files": [config, other_run, Path.home() / ".npmrc"]}
    process.kill()
    process.wait()


@pytest.mark.parametrize("sandbox", ["bubblewrap", "none"])
def test_repository_code_reaches_no_secret_network_or_later_build(sandbox, pipeline_dag, git_server, connections, bucket,
                                                                   s3_server, s3_client, tmp_path, canaries,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv(SETTING + "SANDBOX", sandbox)
    marker = uuid.uuid4().hex
    gitconfig = Path.home() / ".gitconfig"
    before = gitconfig.read_bytes() if gitconfig.exists() else None
    port = urlsplit(s3_server.endpoint_url).port
    project = hostile_project(tmp_path, canaries["files"], port, marker)  # type: ignore[arg-type]
    repo = git_server.publish(f"hostile-{sandbox}", project)

    try:
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))
        assert run.state == "success", run.task_states
        report = objects_in(s3_client, bucket)["my-worker/build.js"].decode()
        left_behind = processes_with_environ(marker)
    finally:
        for pid in processes_with_environ(marker):
            os.kill(pid, signal.SIGKILL)

    assert "== install ran" in report and "== bundle ran" in report, "the hostile steps must have run"
    secret = str(canaries["secret"])
    if sandbox == "none":  # what the setting gives up: the same repository steals the worker's secrets
        assert secret in report
        # Its daemon still ends with the stage where the stage has a cgroup (stage limits), as here as root.
        assert not left_behind or os.geteuid() != 0
        return
    assert secret not in report, report
    assert "AIRFLOW" not in report.replace("AIRFLOW__CLOUDFLARE", "")
    assert "ran as uid 1000" in report
    assert all(f"cannot read {path}" in report for path in canaries["files"]), report  # type: ignore[attr-defined]
    assert "bundle network: none" in report, "the bundle stage has no network"
    # The postinstall runs in install's second phase, after the fetch: no network at all, not even
    # the egress proxy the fetch had, so the worker's loopback (standing in for the metadata
    # database, the broker, the API server) and any public host are out of reach.
    assert "install network: none" in report, "install reached the worker's loopback"
    assert "install proxy to" not in report, "the install scripts were given the fetch's egress proxy"
    assert report.count("== install ran") == 1, "the root's postinstall runs once"
    assert not left_behind, "a setsid daemon outlived its stage"
    assert (gitconfig.read_bytes() if gitconfig.exists() else None) == before, "the worker's ~/.gitconfig changed"


# No repository code needed: symlinks and kustomizations alone.

@pytest.mark.parametrize("link,target,overrides", [
    ("src/config.json", "CANARY_FILE", {}),  # esbuild would inline the host file into the bundle
    ("_kustomize/overlays/staging", "OUTSIDE_DIR", {}),  # a symlinked overlay directory
    ("services", "OUTSIDE_DIR", {"project_root": "services/web"}),  # bundle.sh would clean <outside>/dist
])
def test_a_symlink_leading_out_of_the_repository_fails_checkout_naming_it(
        link, target, overrides, pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path,
        canaries, capfd) -> None:
    outside = tmp_path / "outside"
    (outside / "web" / "dist").mkdir(parents=True)
    (outside / "web" / "dist" / "keep.txt").write_text("not the build's\n")
    resolved = {"CANARY_FILE": str(canaries["files"][0]), "OUTSIDE_DIR": str(outside)}[target]  # type: ignore[index]
    repo = git_server.publish(f"link-{link.replace('/', '-')}", REPO / "examples" / "hello-worker")
    repo.commit({}, "a link out of the repository", links={link: resolved})

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url, **overrides))

    assert run.task_states["checkout"] == "failed", run.task_states
    assert f"{link} -> {resolved}" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}
    assert connections.objects() == {}
    assert (outside / "web" / "dist" / "keep.txt").exists()


@pytest.fixture
def internal_service() -> Iterator[tuple[str, list[str]]]:
    """An 'internal' HTTP service on 127.0.0.1 serving a manifest; records what asked for it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: internal\ndata:\n  token: internal-secret\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/internal.yaml", requests
    server.shutdown()


def test_kustomize_fetches_nothing_and_reads_nothing_outside_the_clone(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path, internal_service, capfd) -> None:
    url, requests = internal_service
    outside = tmp_path / "outside-base"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text("resources: [secret.yaml]\n")
    (outside / "secret.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: host}\ndata: {k: host-secret}\n")
    depth = "../" * (len(outside.parts) + 8)  # far enough up from any overlay to reach /
    overlays = {
        "_kustomize/overlays/remote/kustomization.yaml": f"resources:\n  - {url}\n",
        "_kustomize/overlays/outside/kustomization.yaml": f"resources:\n  - {depth}{str(outside).lstrip('/')}\n",
    }
    for name, kustomization in overlays.items():
        repo = git_server.publish(f"kustomize-{name.split('/')[2]}", hello_worker_variant(
            tmp_path, name.split("/")[2], files={name: kustomization}))
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))
        overlay = name.split("/")[2]
        assert run.task_states["kustomize_build"] == "failed", run.task_states
        assert f"kustomize build failed for overlay {overlay}" in failure_output(capfd)
        assert connections.get("planton-cloud-pipelines", "my-worker-manifests") is None
    assert requests == [], "kustomize reached the internal service"
