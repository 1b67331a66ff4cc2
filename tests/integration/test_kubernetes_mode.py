"""The kubernetes execution mode, end to end against the Kubernetes API emulator: the same DAG,
parameters, results and errors as the local mode, with the stage scripts running in pods through
KubernetesPodOperator's real code path (create, wait, logs, delete)."""

from __future__ import annotations

import json

import pytest

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import R2_ACCESS_KEY, R2_SECRET_KEY, REPO
from tests.helpers import assert_published, conf_for, failure_output, hello_worker_variant, objects_in

SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"
NAMESPACE = "planton-cloud-pipelines"
STAGE_PODS = {"checkout", "install-fetch", "install", "bundle", "typecheck", "kustomize-build"}  # install: fetch, then scripts
STAGE_TASKS = {"checkout", "install", "bundle", "kustomize_build"}


def stage_pods(kube_api) -> dict[str, dict]:
    return {pod["metadata"]["labels"]["app.kubernetes.io/component"]: pod for pod in kube_api.pod_store.deleted_pods}


def test_the_pipeline_runs_its_stages_in_pods_with_the_same_results(pipeline_dag, git_server, kubernetes_mode, bucket,
                                                                    s3_server, s3_client, capfd) -> None:
    repo = git_server.publish("k8s-hello", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    body = assert_published(run, s3_client, kubernetes_mode, bucket, "my-worker/build.js")
    assert b"Hello from a Worker built by Airflow" in body
    assert run.xcom("checkout")["commit_sha"] == repo.head()
    assert run.xcom("install")["package_manager"] == "npm"
    assert set(kubernetes_mode.get(NAMESPACE, "my-worker-manifests")["data"]) == {"dev", "prod"}

    pods = stage_pods(kubernetes_mode)
    assert set(pods) == STAGE_PODS
    assert kubernetes_mode.pods == {}, "every stage pod is deleted when done"
    for pod in pods.values():
        assert pod["status"]["phase"] == "Succeeded"
        assert pod["metadata"]["labels"]["planton.cloud/service-id"] == "svc-abc123"
        assert pod["metadata"]["labels"]["dag_id"] == "build_and_upload_cloudflare_worker"
        assert pod["spec"]["automountServiceAccountToken"] is False
        serialized = json.dumps(pod)
        assert R2_SECRET_KEY not in serialized and R2_ACCESS_KEY not in serialized
    output = failure_output(capfd)
    assert R2_SECRET_KEY not in output
    assert "cannot be called outside of the Task Runner" not in output, "no operator runs inside another"


def test_a_failing_script_in_a_pod_fails_with_the_same_spec_error(pipeline_dag, git_server, kubernetes_mode, bucket,
                                                                  s3_server, s3_client, tmp_path, capfd) -> None:
    repo = git_server.publish("k8s-no-wrangler", hello_worker_variant(tmp_path, "no-wrangler", remove=("wrangler.toml",)))
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["bundle"] == "failed"
    output = failure_output(capfd)
    assert "ERROR: wrangler.toml not found in project root" in output
    assert stage_pods(kubernetes_mode)["bundle"]["status"]["phase"] == "Failed"
    assert kubernetes_mode.pods == {}
    assert objects_in(s3_client, bucket) == {}


@pytest.fixture
def per_run_claims(monkeypatch, connections, kube_api):
    """No shared claim: each run creates its own. Workers see a run's claim at <workspace_root>/<claim>,
    as cloudflare_worker_pipeline.workspace.mount_workspace mounts it on KubernetesExecutor pods; here the
    emulator keeps claims under workspace_root, which stands for that mount."""
    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernetes")
    monkeypatch.delenv(SETTING + "WORKSPACE_CLAIM", raising=False)
    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", str(kube_api.claims_root))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    kube_api.pod_store.deleted_pods.clear()
    return kube_api


def test_a_claim_is_created_for_the_run_and_deleted_when_it_ends(pipeline_dag, git_server, per_run_claims, bucket,
                                                                 s3_server, s3_client) -> None:
    from cloudflare_worker_pipeline.settings import PipelineSettings
    from cloudflare_worker_pipeline.workspace import RunClaim

    repo = git_server.publish("k8s-claim", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert_published(run, s3_client, per_run_claims, bucket, "my-worker/build.js")
    claim = RunClaim(PipelineSettings.from_airflow_config(), pipeline_dag.dag_id, run.run_id).claim_name
    calls = [(method, path) for method, path, _ in per_run_claims.requests if "persistentvolumeclaims" in path]
    assert calls == [("POST", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"),
                     ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{claim}")]
    assert (NAMESPACE, claim) not in per_run_claims.claims
    volumes = {v["persistentVolumeClaim"]["claimName"] for pod in per_run_claims.pod_store.deleted_pods
               for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert volumes == {claim}


def test_a_per_run_claim_without_kubernetes_executor_fails_at_run_start_saying_why(
        pipeline_dag, git_server, per_run_claims, bucket, s3_server, s3_client, monkeypatch, capfd) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    repo = git_server.publish("k8s-celery", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["setup"] == "failed"
    assert "only KubernetesExecutor worker pods can mount" in failure_output(capfd)
    assert per_run_claims.pod_store.deleted_pods == [] and per_run_claims.pods == {}
    assert not [path for _, path, _ in per_run_claims.requests if "persistentvolumeclaims" in path]


def test_a_missing_shared_claim_fails_at_run_start(pipeline_dag, git_server, kubernetes_mode, bucket, s3_server,
                                                   monkeypatch, capfd) -> None:
    monkeypatch.setenv(SETTING + "WORKSPACE_CLAIM", "no-such-claim")
    repo = git_server.publish("k8s-missing-claim", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["setup"] == "failed"
    assert f"claim 'no-such-claim' not found in namespace {NAMESPACE}" in failure_output(capfd)
    assert kubernetes_mode.pod_store.deleted_pods == []


def test_deferrable_pods_free_the_worker_and_give_the_same_results(pipeline_dag, git_server, kubernetes_mode, bucket,
                                                                   s3_server, s3_client, monkeypatch, capfd) -> None:
    monkeypatch.setenv(SETTING + "DEFERRABLE", "true")
    repo = git_server.publish("k8s-deferrable", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert_published(run, s3_client, kubernetes_mode, bucket, "my-worker/build.js")
    assert run.xcom("install")["package_manager"] == "npm"
    assert set(stage_pods(kubernetes_mode)) == STAGE_PODS
    deferred = [line for line in failure_output(capfd).splitlines() if "Pausing task as DEFERRED" in line]
    assert {task for line in deferred for task in STAGE_TASKS if f"task_id={task}" in line} == STAGE_TASKS,\
        "each stage task defers while its pod runs (KubernetesPodTrigger), then resumes"


def test_a_pod_over_the_stage_timeout_is_stopped_with_the_same_error(pipeline_dag, git_server, kubernetes_mode, bucket,
                                                                     s3_server, monkeypatch, capfd) -> None:
    from examples.local_stack.dag_run import fast_retries

    monkeypatch.setenv(SETTING + "STAGE_TIMEOUT_SECONDS", "2")
    repo = git_server.publish("k8s-slow-install", REPO / "examples" / "hello-worker")
    with fast_retries(pipeline_dag, "checkout", "install"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["install"] == "failed"
    assert "install.sh timed out after 2 s and was stopped" in failure_output(capfd)
    install_pods = [p for p in kubernetes_mode.pod_store.deleted_pods if p["metadata"]["labels"]["app.kubernetes.io/component"] == "install-fetch"]
    assert install_pods and all(p["status"]["reason"] == "DeadlineExceeded" for p in install_pods)
    assert kubernetes_mode.pods == {}


def test_a_result_far_over_the_termination_messages_4_kib_comes_back_whole(pipeline_dag, git_server, kubernetes_mode,
                                                                           bucket, s3_server, s3_client, tmp_path) -> None:
    """A monorepo's bundle report (25 inputs with long paths) once came back cut to the kubelet's
    4,096 bytes, no longer JSON: "succeeded but its pod reported no results". Here it is over 64 KiB."""
    deep = "/".join(f"{n:02d}" + "d" * 188 for n in range(14))  # a 2.7 kB directory path
    paths = [f"src/m{n:02d}/{deep}/module.ts" for n in range(25)]
    modules = {path: f'export const part{n} = "{chr(65 + n) * (1000 + n)}";\n' for n, path in enumerate(paths)}
    index = "".join(f'import {{ part{n} }} from "./{path.removeprefix("src/")}";\n'.replace(".ts\"", "\"")
                    for n, path in enumerate(paths))
    index += "export default { fetch: () => new Response([" + ", ".join(f"part{n}" for n in range(25)) + "].join()) };\n"
    project = hello_worker_variant(tmp_path, "deep-monorepo", files={**modules, "src/index.ts": index})
    repo = git_server.publish("k8s-deep", project)

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    raw = json.dumps([{"input": path, "bytes": 0} for path in paths])
    assert len(raw) > 64 * 1024, "the report the pod wrote is at least this long"
    report = run.xcom("bundle")["report"]  # each input cut to 500 characters for the XCom
    assert sorted(row["input"] for row in report) == [path[:500] for path in paths]
    assert_published(run, s3_client, kubernetes_mode, bucket, "my-worker/build.js")
