"""Several workers per service (``additional-workers``): one checkout and one install, then the
``workers`` task group mapped by Airflow, one bundle, typecheck and upload per worker, and one
artifact ConfigMap each. Real pnpm workspaces, Wrangler 4.86.0, SeaweedFS and the Kubernetes API
emulator, through ``dag.test()``.
"""

from __future__ import annotations

import hashlib

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import FIXTURES
from tests.helpers import NAMESPACE, two_workers_conf


def test_two_workers_share_one_checkout_and_install_and_each_gets_its_object_and_config_map(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client) -> None:
    repo = git_server.publish("two-workers", FIXTURES / "projects" / "pnpm-two-workers")
    short = repo.head()[:12]
    run = run_pipeline(pipeline_dag, two_workers_conf(repo.url, bucket, s3_server.endpoint_url,
                                                      api_key="api/{short_sha}.js", cron_key="cron/{short_sha}.js"))

    assert run.state == "success", run.task_states
    assert {key: state for key, state in run.mapped_states.items()} == {
        (task, index): "success" for task in ("bundle", "typecheck", "upload") for index in (0, 1)}
    assert run.xcom("install")["package_manager"] == "pnpm"
    for index, (key, name, text) in enumerate([(f"api/{short}.js", "api-worker-artifact", b"api-worker"),
                                               (f"cron/{short}.js", "cron-worker-artifact", b"cron-worker")]):
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert text in body and b"from the monorepo" in body, "each worker bundles its own entry and the shared package"
        assert run.xcom("bundle", index)["sha256"] == run.xcom("upload", index)["sha256"] == hashlib.sha256(body).hexdigest()
        assert connections.get(NAMESPACE, name)["data"] == {
            "bucket": bucket, "path": key, "content-hash": hashlib.sha256(body).hexdigest(), "size-bytes": str(len(body))}
        assert run.links.get("upload/R2ObjectLink") is not None
    published = run.xcom("publish")
    assert published["artifact"]["key"] == f"api/{short}.js"
    assert [w["artifact"]["key"] for w in published["additional_workers"]] == [f"cron/{short}.js"]
    assert published["additional_workers"][0]["artifact_config_map"].startswith("configmap/cron-worker-artifact ")
    assert set(connections.get(NAMESPACE, "two-workers-manifests")["data"]) == {"staging"}, "one kustomize build"
    assert len(run.xcom("checkout")["additional_workers"]) == 1
    assert run.xcom("checkout")["additional_workers"][0]["fingerprint"] != run.xcom("checkout")["fingerprint"]


def test_a_change_to_one_worker_rebuilds_that_worker_only_and_a_failing_worker_publishes_nothing(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client) -> None:
    repo = git_server.publish("two-workers-rebuild", FIXTURES / "projects" / "pnpm-two-workers")
    conf = two_workers_conf(repo.url, bucket, s3_server.endpoint_url, api_key="api/worker.js", cron_key="cron/worker.js")
    first = run_pipeline(pipeline_dag, conf)
    api_stored = s3_client.head_object(Bucket=bucket, Key="api/worker.js")

    again = run_pipeline(pipeline_dag, conf)
    assert first.state == again.state == "success"
    assert {task: again.task_states[task] for task in ("install", "bundle", "typecheck", "upload")} == dict.fromkeys(
        ("install", "bundle", "typecheck", "upload"), "skipped"), "every worker stored: nothing is built"
    assert again.xcom("publish")["additional_workers"][0]["artifact"]["skipped"] is True

    repo.commit({"services/cron-worker/src/extra.ts": "export const extra = 1;\n"}, "a change to the cron worker")
    cron_only = run_pipeline(pipeline_dag, conf)
    assert cron_only.state == "success", cron_only.task_states
    assert cron_only.task_states["install"] == "success"
    assert {key: state for key, state in cron_only.mapped_states.items() if key[0] in ("bundle", "upload")} == {
        ("bundle", 0): "skipped", ("upload", 0): "skipped", ("bundle", 1): "success", ("upload", 1): "success"}
    assert s3_client.head_object(Bucket=bucket, Key="api/worker.js")["LastModified"] == api_stored["LastModified"]
    assert s3_client.head_object(Bucket=bucket, Key="cron/worker.js")["Metadata"]["commit"] == repo.head()
    api_annotations = connections.get(NAMESPACE, "api-worker-artifact")["metadata"]["annotations"]
    assert api_annotations["cloudflare-worker-pipeline.planton.cloud/commit"] == repo.head(), \
        "the stored worker's ConfigMap is applied again with the run's commit"
    published = connections.get(NAMESPACE, "cron-worker-artifact")

    repo.commit({"services/cron-worker/src/index.ts": "export default { scheduled( {\n"}, "a syntax error")
    broken = run_pipeline(pipeline_dag, conf)
    assert broken.state == "failed"
    assert broken.mapped_states[("bundle", 1)] == "failed" and broken.task_states["publish"] == "upstream_failed"
    assert connections.get(NAMESPACE, "cron-worker-artifact")["metadata"]["annotations"] == published["metadata"][
        "annotations"], "a release is published whole or not at all"
    assert connections.get(NAMESPACE, "api-worker-artifact")["metadata"]["annotations"] == api_annotations
