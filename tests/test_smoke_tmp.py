from pathlib import Path
from tests.conftest import REPO
from tests.pipeline_run import run_pipeline

def test_npm(pipeline_dag, git_server, connections, bucket, s3_server, s3_client, monkeypatch):
    repo = git_server.publish("hello", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, {
        "git-url": repo.url, "r2-bucket-name": bucket, "r2-endpoint-url": s3_server.endpoint_url,
        "r2-object-key": "hello/x.js", "worker-script-artifact-config-map-name": "hello-artifact",
        "kustomize-manifests-config-map-name": "hello-manifests",
        "owner-identifier-label-key": "planton.cloud/service-id", "owner-identifier-label-value": "svc-1"})
    print(run); import pprint
    print(connections.objects())
    assert run.state == "success"
