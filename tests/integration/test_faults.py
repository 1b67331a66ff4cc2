"""Faults on 127.0.0.1, bounded in count and time, and the invariants that must survive them:
the object at the key is the previous complete bundle or the new complete one; ConfigMaps are
published only after the upload and the overlays both succeeded; no pod or workspace is left.
Transient faults are retried (botocore's own retries, then Airflow's); permanent ones fail at once.

One window cannot be closed with two systems and no transaction: a fixed key overwritten, then
the Kubernetes API unreachable for every try of ``publish``. The artifact ConfigMap then still
describes the previous object. The run fails saying exactly that (object, both hashes); the
object's own metadata names the new content-hash and commit, so a reader can tell.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from examples.local_stack import free_port
from examples.local_stack.dag_run import fast_retries, run_pipeline
from tests.conftest import REPO
from tests.helpers import (
    NAMESPACE,
    OWNER,
    assert_published,
    conf_for,
    failure_output,
    hello_worker_variant,
    objects_in,
    processes_with_environ,
    workspace_of,
)

KEY = "my-worker/build.js"
INSTALL_ENV = json.loads(os.environ["AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__INSTALL_ENV"])
PREVIOUS = b"export default { fetch() { return new Response('previous build'); } };"


@pytest.fixture(scope="module")
def faulty_s3(s3_server):
    from examples.local_stack.s3_proxy import S3Proxy

    proxy = S3Proxy(upstream=s3_server.endpoint_url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def previous_build(connections, s3_client, bucket):
    """The bucket and the ConfigMap as an earlier, successful run left them."""
    from kubernetes import client, config

    s3_client.put_object(Bucket=bucket, Key=KEY, Body=PREVIOUS, Metadata={"owner": f"{OWNER[0]}={OWNER[1]}"},
                         ChecksumSHA256=base64.b64encode(hashlib.sha256(PREVIOUS).digest()).decode())
    kubeconfig = json.loads(os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"])["extra"]["kube_config_path"]
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    owner = f"{OWNER[0]}={OWNER[1]}"
    api.create_namespaced_config_map(NAMESPACE, {"metadata": {
        "name": "my-worker-artifact-metadata",
        "labels": {"app.kubernetes.io/managed-by": "planton-cloud", OWNER[0]: OWNER[1]},
        "annotations": {"cloudflare-worker-pipeline.planton.cloud/owner": owner}}, "data": {
        "bucket": bucket, "path": KEY, "content-hash": hashlib.sha256(PREVIOUS).hexdigest(),
        "size-bytes": str(len(PREVIOUS))}})
    return connections


def assert_previous_pair_intact(kube_api, s3_client, bucket) -> None:
    assert objects_in(s3_client, bucket) == {KEY: PREVIOUS}
    assert kube_api.get(NAMESPACE, "my-worker-artifact-metadata")["data"]["content-hash"] == hashlib.sha256(PREVIOUS).hexdigest()


def test_slowdown_and_503_are_retried_and_the_upload_lands(pipeline_dag, git_server, previous_build, bucket, faulty_s3,
                                                           s3_client) -> None:
    from examples.local_stack.s3_proxy import S3Fault

    fault = faulty_s3.inject(S3Fault("PUT", rf"/{bucket}/", 503, code="SlowDown", times=2))
    repo = git_server.publish("fault-slowdown", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, faulty_s3.url))

    assert fault.hits == 2
    assert run.task_states["upload"] == "success"
    body = assert_published(run, s3_client, previous_build, bucket, KEY)
    assert body != PREVIOUS


def test_a_persistent_500_fails_after_bounded_retries_leaving_the_previous_pair(
        pipeline_dag, git_server, previous_build, bucket, faulty_s3, s3_client, capfd) -> None:
    from examples.local_stack.s3_proxy import S3Fault

    fault = faulty_s3.inject(S3Fault("PUT", rf"/{bucket}/", 500, code="InternalError", times=1000))
    repo = git_server.publish("fault-500", REPO / "examples" / "hello-worker")
    started = time.monotonic()
    with fast_retries(pipeline_dag, "upload"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, faulty_s3.url))
    fault.times = 0

    assert run.task_states["upload"] == "failed" and run.task_states["publish"] == "upstream_failed"
    tries = 1 + pipeline_dag.get_task("upload").retries
    assert fault.hits == tries * 5, "botocore's attempt and 4 retries in each of Airflow's tries, and no more"
    assert f"upload: failed: s3://{bucket}/{KEY} InternalError" in failure_output(capfd)
    assert time.monotonic() - started < 180
    assert_previous_pair_intact(previous_build, s3_client, bucket)
    assert not workspace_of(run).exists()


def test_a_body_corrupted_in_flight_is_refused_as_bad_digest_and_fails_at_once(
        pipeline_dag, git_server, previous_build, bucket, faulty_s3, s3_client, capfd) -> None:
    from examples.local_stack.s3_proxy import S3Fault

    fault = faulty_s3.inject(S3Fault("PUT", rf"/{bucket}/", "corrupt", times=1000))
    repo = git_server.publish("fault-digest", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, faulty_s3.url))
    fault.times = 0

    assert run.task_states["upload"] == "failed"
    assert fault.hits == 1, "a checksum mismatch is permanent: no retry"
    assert f"upload: failed: s3://{bucket}/{KEY} BadDigest" in failure_output(capfd)
    assert_previous_pair_intact(previous_build, s3_client, bucket)


def test_a_connection_dropped_mid_upload_is_retried_and_no_partial_object_is_kept(
        pipeline_dag, git_server, previous_build, bucket, faulty_s3, s3_client) -> None:
    from examples.local_stack.s3_proxy import S3Fault

    fault = faulty_s3.inject(S3Fault("PUT", rf"/{bucket}/", "drop", times=1))
    repo = git_server.publish("fault-drop", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, faulty_s3.url))

    assert fault.hits == 1
    assert_published(run, s3_client, previous_build, bucket, KEY)


def test_kubernetes_api_down_after_a_fixed_key_was_replaced_fails_naming_the_object_and_both_hashes(pipeline_dag, git_server, previous_build, bucket,
                                                                       s3_server, s3_client, monkeypatch, tmp_path,
                                                                       capfd) -> None:
    closed = tmp_path / "closed-kubeconfig.yaml"
    kubeconfig = Path(json.loads(os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"])["extra"]["kube_config_path"])
    closed.write_text(kubeconfig.read_text().replace(previous_build.url, f"http://127.0.0.1:{free_port()}"))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(closed)}}))
    repo = git_server.publish("fault-api-down", REPO / "examples" / "hello-worker")
    with fast_retries(pipeline_dag, "publish"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "failed" and run.task_states["publish"] == "failed"
    body = objects_in(s3_client, bucket)[KEY]
    new, old = hashlib.sha256(body).hexdigest(), hashlib.sha256(PREVIOUS).hexdigest()
    output = failure_output(capfd)
    assert (f"ERROR: s3://{bucket}/{KEY} now holds sha256 {new} (commit {repo.head()}), replacing sha256 {old}, "
            f"but ConfigMap {NAMESPACE}/my-worker-manifests could not be written") in output
    assert "readers of that ConfigMap see the previous release" in output
    head = s3_client.head_object(Bucket=bucket, Key=KEY)["Metadata"]
    assert head["content-hash"] == new and head["commit"] == repo.head(), "the object says which build it is"
    assert previous_build.get(NAMESPACE, "my-worker-artifact-metadata")["data"]["content-hash"] == old
    assert not workspace_of(run).exists()


def test_an_unreachable_git_server_is_retried_then_fails_clearly(pipeline_dag, connections, bucket, s3_server, s3_client,
                                                                 capfd) -> None:
    with fast_retries(pipeline_dag, "checkout"):
        run = run_pipeline(pipeline_dag, conf_for(f"git://127.0.0.1:{free_port()}/nowhere.git", bucket, s3_server.endpoint_url))

    assert run.task_states["checkout"] == "failed"
    output = failure_output(capfd)
    assert output.count("checkout.sh failed with exit code") == 1 + pipeline_dag.get_task("checkout").retries
    assert "unable to connect to 127.0.0.1" in output
    assert objects_in(s3_client, bucket) == {} and connections.objects() == {}


def test_an_unreachable_npm_registry_fails_the_install(pipeline_dag, git_server, connections, bucket, s3_server, s3_client,
                                                       monkeypatch, tmp_path, capfd) -> None:
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__INSTALL_ENV", json.dumps({
        "npm_config_registry": f"http://127.0.0.1:{free_port()}/", "npm_config_cache": str(tmp_path / "empty-cache"),
        "npm_config_fetch_retries": "0"}))
    repo = git_server.publish("fault-registry", REPO / "examples" / "hello-worker")
    with fast_retries(pipeline_dag, "install"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["install"] == "failed"
    # The egress proxy tried the registry for npm and says why it could not connect.
    assert "unable to connect to 127.0.0.1" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}


def test_a_failing_wrangler_build_fails_the_bundle_with_its_error(pipeline_dag, git_server, connections, bucket,
                                                                  s3_server, s3_client, tmp_path, capfd) -> None:
    project = hello_worker_variant(tmp_path, "syntax-error", files={"src/index.ts": "export default { fetch( {\n"})
    repo = git_server.publish("fault-wrangler", project)
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["bundle"] == "failed"
    output = failure_output(capfd)
    assert "bundle.sh failed with exit code 1" in output
    assert "[ERROR] Expected identifier but found end of file" in output, "Wrangler's own error is in the task's"
    assert objects_in(s3_client, bucket) == {}


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_killed_stage_takes_every_process_it_started_with_it(tmp_path, sandboxed) -> None:
    """The bundle or install task killed midway (on_kill, or a timeout): npm and its children stop."""
    import logging
    import uuid

    from cloudflare_worker_pipeline.egress_policies import registry_egress
    from cloudflare_worker_pipeline.execution.base import StageScriptError
    from cloudflare_worker_pipeline.execution.local import LocalScriptRunner
    from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
    from cloudflare_worker_pipeline.settings import PipelineSettings

    project = hello_worker_variant(tmp_path, "project")
    policy = SandboxPolicy(writable=(tmp_path,), home=tmp_path / ".home",
                           egress=registry_egress(PipelineSettings.from_airflow_config()))
    runner = LocalScriptRunner(logging.getLogger("kill-test"), workspace=tmp_path, policy=policy, sandboxed=sandboxed)
    marker = f"KILL_TEST_{uuid.uuid4().hex}"
    env = {"INSTALL_DIR": str(project), "KILL_TEST_MARKER": marker,
           "npm_config_cache": str(tmp_path / "cold-cache"), **INSTALL_ENV}  # cold: slow enough to kill
    errors: list[BaseException] = []
    worker = threading.Thread(target=lambda: _run(runner, env, tmp_path, errors))
    worker.start()
    deadline = time.monotonic() + 30
    while not processes_with_environ(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    assert processes_with_environ(marker), "the stage should be running"
    runner.terminate()
    worker.join(30)
    assert errors and isinstance(errors[0], StageScriptError)
    alive: list[int] = []
    for _ in range(50):  # SIGKILL is delivered at once; the kernel reaps within moments
        alive = processes_with_environ(marker)
        if not alive:
            break
        time.sleep(0.1)
    assert alive == [], f"processes left by the killed stage: {alive}"


def _run(runner, env, tmp_path, errors) -> None:
    try:
        runner.run("install.sh", env, results_dir=tmp_path / "results", timeout_seconds=120)
    except BaseException as error:
        errors.append(error)


def test_a_409_on_the_metadata_create_is_read_again_and_the_write_lands(pipeline_dag, git_server, connections, bucket,
                                                                        s3_server, s3_client) -> None:
    from examples.local_stack.kube_api import Fault

    fault = connections.inject(Fault("POST", r"/namespaces/[^/]+/configmaps$", 409))
    repo = git_server.publish("fault-409", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert fault.times == 0
    assert run.task_states["publish"] == "success", "a conflict re-reads; no Airflow retry needed"
    assert_published(run, s3_client, connections, bucket, KEY)


def test_a_stalled_api_server_times_the_write_out_and_the_retry_lands(pipeline_dag, git_server, connections, bucket,
                                                                      s3_server, s3_client, capfd) -> None:
    import logging

    from cloudflare_worker_pipeline.config_maps import build_annotations, config_map, config_map_store
    from cloudflare_worker_pipeline.hooks.kubernetes import API_TIMEOUT
    from cloudflare_worker_pipeline.settings import PipelineSettings

    from examples.local_stack.kube_api import Fault

    # An earlier build's manifests exist, so this run's write is an update (PATCH) that stalls.
    config_map_store(PipelineSettings.from_airflow_config()).write(
        config_map("my-worker-manifests", NAMESPACE, {"app.kubernetes.io/managed-by": "planton-cloud", OWNER[0]: OWNER[1]},
                   {"dev": "e30="}, build_annotations(commit="0" * 40, git_url="x", dag_id="d", run_id="r",
                                                      owner=f"{OWNER[0]}={OWNER[1]}")),
        logging.getLogger("setup"))
    fault = connections.inject(Fault("PATCH", r"/configmaps/my-worker-manifests$", "stall",
                                     stall_seconds=API_TIMEOUT[1] + 5))
    repo = git_server.publish("fault-stall", REPO / "examples" / "hello-worker")
    with fast_retries(pipeline_dag, "publish"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert fault.times == 0
    assert "Read timed out" in failure_output(capfd)
    assert run.task_states["publish"] == "success"
    assert set(connections.get(NAMESPACE, "my-worker-manifests")["data"]) == {"dev", "prod"}
