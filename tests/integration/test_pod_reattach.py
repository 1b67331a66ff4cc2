"""Kubernetes mode: a task whose worker dies mid-stage follows its pod on the next try (issue 21).

Pod names end in a random suffix, so a restarted task once started a second pod beside the first.
Here a checkout pod (fetching through a deliberately slow relay to the git daemon) is started by a
task process that is then killed, as a worker dies; the next try finds the pod by its task
labels, follows it to the end, reads its results and deletes it: one pod ran, none is left.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.local_stack import wait_until
from tests.conftest import REPO

RUN_ID = "manual__reattach"


def runner(try_number: int, workspace: Path, claims_root: Path):  # type: ignore[no-untyped-def]
    """The checkout stage's pod runner, as the task's try ``try_number`` builds it."""
    from cloudflare_worker_pipeline.execution.kubernetes import PodScriptRunner
    from cloudflare_worker_pipeline.execution.pod_spec import StagePod
    from cloudflare_worker_pipeline.settings import PipelineSettings
    from cloudflare_worker_pipeline.workspace import ClaimMount

    settings = PipelineSettings.from_airflow_config()
    sub_path = str(workspace.relative_to(claims_root / "builds"))
    stage = StagePod(stage="checkout", script="checkout.sh", image=settings.pods.git_image, env={},
                     namespace=settings.namespace, egress="git", workspace=ClaimMount("builds", sub_path),
                     timeout_seconds=120, labels={"dag_id": "reattach", "task_id": "checkout", "run_id": RUN_ID,
                                                  "try_number": str(try_number)})
    return PodScriptRunner(logging.getLogger("reattach"), pods=settings.pods, conn_id=settings.kubernetes_conn_id,
                           stage=stage, workspace=workspace, results_dir=workspace / "results" / "checkout")


def run_checkout(try_number: int, workspace: Path, claims_root: Path, git_url: str) -> dict[str, str]:
    mount = Path("/workspace")
    env = {"GIT_URL": git_url, "GIT_REVISION": "main", "GIT_BRANCH": "", "SPARSE_CHECKOUT_DIRECTORIES": "",
           "CHECKOUT_DIR": str(mount / "source"), "GIT_ALLOW_PROTOCOL": "git", "GIT_SUBMODULES": "false",
           "INPUT_DIRECTORIES": "."}
    return runner(try_number, workspace, claims_root).run("checkout.sh", env, results_dir=mount / "results" / "checkout",
                                                          timeout_seconds=120)


@pytest.fixture
def slow_git(git_server) -> Iterator[int]:
    """A relay to the git daemon that waits 4 s before it connects: the pod runs long enough to kill its task."""
    server = socket.create_server(("127.0.0.1", 0))

    def relay(client: socket.socket) -> None:
        time.sleep(4)
        with client, socket.create_connection(("127.0.0.1", git_server.port)) as upstream:
            def pump(source: socket.socket, sink: socket.socket) -> None:
                while data := source.recv(65536):
                    sink.sendall(data)
                sink.shutdown(socket.SHUT_WR)
            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            pump(client, upstream)
            back.join(30)

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_killed_task_s_next_try_follows_its_running_pod_instead_of_starting_another(
        kubernetes_mode, git_server, slow_git, tmp_path) -> None:
    repo = git_server.publish("reattach", REPO / "examples" / "hello-worker")
    url = f"git://127.0.0.1:{slow_git}/reattach.git"
    claims_root = kubernetes_mode.claims_root
    workspace = claims_root / "builds" / "reattach" / tmp_path.name
    (workspace / "results" / "checkout").mkdir(parents=True)
    first_try = subprocess.Popen(  # the task's first try, in its own process, as a worker runs it
        [sys.executable, "-c", "import sys; from pathlib import Path; from tests.integration.test_pod_reattach import "
         "run_checkout; run_checkout(1, Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])",
         str(workspace), str(claims_root), url], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True)

    def checkout_pods() -> list[dict]:
        return [p for p in kubernetes_mode.pod_store.pods.values()
                if p["metadata"]["labels"].get("run_id") == RUN_ID]

    wait_until(lambda: any(p["status"].get("phase") == "Running" for p in checkout_pods()), "the first try's pod running",
               timeout=60)
    os.killpg(first_try.pid, signal.SIGKILL)  # the worker dies mid-stage
    first_try.wait(10)
    [started] = checkout_pods()

    results = run_checkout(2, workspace, claims_root, url)

    assert results["commit"] == repo.head(), "the results of the pod the first try started"
    assert checkout_pods() == [], "the followed pod is deleted when done"
    ran = [p for p in kubernetes_mode.pod_store.deleted_pods if p["metadata"]["labels"].get("run_id") == RUN_ID]
    assert [p["metadata"]["name"] for p in ran] == [started["metadata"]["name"]], "one pod ran, not two"
    assert ran[0]["metadata"]["labels"]["try_number"] == "1"
