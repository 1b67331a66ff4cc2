"""`make airflow`: a real Airflow running the pipeline on this machine, until Ctrl-C.

Starts PostgreSQL, SeaweedFS (the S3 server standing in for R2, with the bucket created), a git
daemon serving examples/hello-worker, and Airflow's api-server, scheduler, dag-processor and
triggerer (LocalExecutor), all on 127.0.0.1; provisions the R2 connection and the pipeline's
settings through the environment, unpauses the DAG, and prints the UI's address, the login and a
`curl` that triggers a build. Ctrl-C (or SIGTERM) stops everything it started.

    python examples/airflow_stack.py [--root DIR] [--port N] [--ready-file FILE]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from examples.local_stack.pipeline_env import BUCKET, DAG_ID, example_conf, pipeline_env  # noqa: E402

ACCESS_KEY = "local-access-key"


def trigger_command(url: str, username: str, password: str, conf: dict[str, str]) -> str:
    """A shell snippet that gets a token and triggers one build over the REST API."""
    login = json.dumps({"username": username, "password": password})
    body = json.dumps({"logical_date": None, "conf": conf})
    return (
        f"TOKEN=$(curl -s -X POST {url}/auth/token -H 'Content-Type: application/json' -d {shlex.quote(login)} "
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
        f"curl -s -X POST {url}/api/v2/dags/{DAG_ID}/dagRuns -H \"Authorization: Bearer $TOKEN\" "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/cloudflare-worker-pipeline-airflow"),
                        help="where everything keeps its state (recreated on each start)")
    parser.add_argument("--port", type=int, default=0, help="the api-server's port (default: a free one)")
    parser.add_argument("--ready-file", type=Path, help="write the URL, login and conf here as JSON once ready")
    args = parser.parse_args()

    import boto3
    from botocore.config import Config

    from examples.local_stack.airflow_server import start_airflow
    from examples.local_stack.git_daemon import start_git_daemon
    from examples.local_stack.postgres import start_postgres
    from examples.local_stack.seaweedfs import start_seaweedfs

    root: Path = args.root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    secret_key, password = secrets.token_urlsafe(24), secrets.token_urlsafe(12)
    # Ctrl-C and SIGTERM stop everything, even when started with SIGINT ignored (a background job
    # of a non-interactive shell, as CI's), where Python would not turn SIGINT into KeyboardInterrupt.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)

    started: list[object] = []
    postgres_dir: Path | None = None
    try:
        # Its own directory: the postgres user must reach it, whatever the permissions above --root.
        postgres_dir = Path(tempfile.mkdtemp(prefix="cfw-airflow-pg-"))
        postgres = start_postgres(postgres_dir / "pg")
        started.append(postgres)
        s3 = start_seaweedfs(root / "seaweedfs", ACCESS_KEY, secret_key)
        started.append(s3)
        boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret_key,
                     region_name="auto", config=Config(request_checksum_calculation="when_required")
                     ).create_bucket(Bucket=BUCKET)
        git = start_git_daemon(root / "git")
        started.append(git)
        repo = git.publish("hello-worker", REPO / "examples" / "hello-worker")
        airflow = start_airflow(root / "airflow", postgres.url, REPO / "dags", {
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            **pipeline_env(root, ACCESS_KEY, secret_key),
        }, port=args.port or None, username="admin", password=password)
        started.append(airflow)
        airflow.wait_for_dag(DAG_ID, timeout=180)
        airflow.api().patch(f"{airflow.url}/api/v2/dags/{DAG_ID}", json={"is_paused": False}, timeout=10)
        conf = example_conf(repo.url, s3.endpoint_url)
        print(f"""
Airflow is running the pipeline on this machine.

  UI        {airflow.url}/dags/{DAG_ID}
  login     admin / {password}
  S3 (R2)   {s3.endpoint_url}  bucket {BUCKET}  (key {ACCESS_KEY}, secret {secret_key})
  manifests {root / "configmaps"}
  logs      {root / "airflow"}/*.log

Trigger a build of examples/hello-worker:

{trigger_command(airflow.url, "admin", password, conf)}

Ctrl-C stops everything.""", flush=True)
        if args.ready_file:
            args.ready_file.write_text(json.dumps({
                "url": airflow.url, "username": "admin", "password": password, "conf": conf,
                "s3": {"endpoint_url": s3.endpoint_url, "access_key": ACCESS_KEY, "secret_key": secret_key},
                "pids": [p.pid for p in airflow.processes]}))
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        for component in reversed(started):
            component.stop()  # type: ignore[attr-defined]
        if postgres_dir is not None:
            shutil.rmtree(postgres_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
