import time
from pathlib import Path
from tests.conftest import REPO
from tests.pipeline_run import run_pipeline
from tests.servers import free_port

def test_upload_refused(pipeline_dag, git_server, connections, bucket, s3_server, capfd):
    repo = git_server.publish("hello", REPO / "examples" / "hello-worker")
    t = time.time()
    run = run_pipeline(pipeline_dag, {
        "git-url": repo.url, "r2-bucket-name": bucket, "r2-endpoint-url": f"http://127.0.0.1:{free_port()}",
        "r2-object-key": "hello/x.js", "worker-script-artifact-config-map-name": "hello-artifact",
        "kustomize-manifests-config-map-name": "hello-manifests"})
    out = capfd.readouterr()
    print("ELAPSED", time.time() - t, run.task_states)
    print([l for l in (out.out + out.err).splitlines() if "upload: failed" in l][:5])
    import os
    print(list(Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"))[:10])
