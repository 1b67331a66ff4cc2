"""`make demo`: build examples/hello-worker through the real DAG, on this machine alone.

Starts SeaweedFS (a real S3 server, checking signatures and checksums) and a git daemon on
127.0.0.1, runs ``build_and_upload_cloudflare_worker`` with ``dag.test()`` (every stage as a local
process), reads the object back from S3 to prove it, and prints what the pipeline produced. With no
Kubernetes connection configured, the ConfigMaps land as manifest files under ``.demo/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
ACCESS_KEY, SECRET_KEY = "demo-access-key", "demo-secret-key-change-me"

sys.path.insert(0, str(REPO))
from examples.local_stack.pipeline_env import BUCKET, DAG_ID, example_conf, pipeline_env  # noqa: E402

os.environ.update({
    "AIRFLOW_HOME": str(DEMO / "airflow"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{DEMO / 'airflow.db'}",
    **pipeline_env(DEMO, ACCESS_KEY, SECRET_KEY),
})
os.environ.pop("AIRFLOW_CONN_KUBERNETES_DEFAULT", None)


def main() -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import resetdb

    from examples.local_stack.dag_run import run_pipeline
    from examples.local_stack.git_daemon import start_git_daemon
    from examples.local_stack.seaweedfs import start_seaweedfs

    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    resetdb()
    s3 = start_seaweedfs(DEMO / "seaweedfs", ACCESS_KEY, SECRET_KEY)
    git_daemon = start_git_daemon(DEMO / "git")
    try:
        client = _s3_client(s3.endpoint_url)
        client.create_bucket(Bucket=BUCKET)
        repo = git_daemon.publish("hello-worker", REPO / "examples" / "hello-worker")
        conf = example_conf(repo.url, s3.endpoint_url)
        print(f"Triggering {DAG_ID} with conf:\n" + json.dumps(conf, indent=2), flush=True)
        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(DAG_ID)
        run = run_pipeline(dag, conf)
        if run.state != "success":
            print(f"\nThe run ended {run.state}: {run.task_states}", file=sys.stderr)
            return 1
        upload = run.xcom("upload")
        stored = client.get_object(Bucket=BUCKET, Key=upload["key"])["Body"].read()
        assert hashlib.sha256(stored).hexdigest() == upload["sha256"], "object read back differs"
        print("\n== Cloudflare Worker built and uploaded ==")
        print(f"commit        {run.xcom('checkout')['commit_sha']}")
        print(f"artifact URL  {upload['artifact_url']}")
        print(f"SHA-256       {upload['sha256']} (read back from S3 and matched)")
        print(f"size          {upload['size_bytes']} bytes (gzip {upload['gzip_bytes']}, brotli {upload['brotli_bytes']})")
        for stored in upload["files"] + ([upload["provenance"]] if upload["provenance"] else []):
            print(f"beside it     {stored['key']} ({stored['kind']}, {stored['size_bytes']} bytes)")
        print(f"ConfigMaps    {run.xcom('publish')['artifact_config_map']}")
        print(f"              {run.xcom('publish')['manifests_config_map']}")
        print("Apply them with: kubectl apply -f " + str(DEMO / "configmaps" / "planton-cloud-pipelines"))
        return 0
    finally:
        git_daemon.stop()
        s3.stop()


def _s3_client(endpoint_url: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        region_name="auto",
        config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )


if __name__ == "__main__":
    sys.exit(main())
