"""`make demo`: build examples/hello-worker through the real DAG, on this machine alone.

Starts SeaweedFS (a real S3 server, checking signatures and checksums) and a git daemon on
127.0.0.1, runs ``build_and_upload_cloudflare_worker`` with ``dag.test()`` (every stage as a local
process), reads the object back from S3 to prove it, and prints what the pipeline produced. With no
Kubernetes connection configured, the ConfigMaps land as manifest files under ``.demo/``.

The S3 server's data and the ConfigMap files are kept between demos and the example is committed
with a fixed date, so a second ``make demo`` of the unchanged example finds its build stored and
skips it, as a rebuild of an unchanged commit would in production. ``rm -rf .demo`` starts over.
Airflow's own output (the task runner's logs) goes to ``.demo/demo.log``; the terminal shows one
line per task and the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
DEMO = Path(os.environ.get("CFW_DEMO_DIR") or REPO / ".demo").resolve()
LOG = DEMO / "demo.log"
ACCESS_KEY, SECRET_KEY = "demo-access-key", "demo-secret-key-change-me"
# The example's commit date: the same files make the same commit, demo after demo.
COMMIT_DATE = "2026-01-01T00:00:00Z"

sys.path.insert(0, str(REPO))
from examples.local_stack.pipeline_env import (  # noqa: E402
    BUCKET,
    DAG_ID,
    PUBLIC_KEY,
    SIGNING_KEY,
    example_conf,
    pipeline_env,
)

# What a demo keeps: the S3 server's data (the stored builds), the ConfigMap files it applied, the
# git daemon's port (the example's repository URL, which a skip must match), and the key pair that
# signs the builds' provenance (a stored build verifies only with the key that signed it).
KEPT = ("seaweedfs", "configmaps", "git-port", SIGNING_KEY, PUBLIC_KEY)

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
    _clear_all_but_the_stored_builds()
    with _output_to(LOG) as terminal:
        return _demo(terminal)


def _demo(terminal: TextIO) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import resetdb

    from examples.local_stack.dag_run import run_pipeline
    from examples.local_stack.git_daemon import start_git_daemon
    from examples.local_stack.seaweedfs import start_seaweedfs

    def say(line: str = "") -> None:
        print(line, file=terminal, flush=True)

    say(f"Airflow's output (the task runner's logs) goes to {LOG}")
    resetdb()
    s3 = start_seaweedfs(DEMO / "seaweedfs", ACCESS_KEY, SECRET_KEY)
    git_daemon = start_git_daemon(DEMO / "git", port_file=DEMO / "git-port")  # the same repository URL as last time
    try:
        client = _s3_client(s3.endpoint_url)
        if BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
            client.create_bucket(Bucket=BUCKET)
        repo = git_daemon.publish("hello-worker", REPO / "examples" / "hello-worker", commit_date=COMMIT_DATE)
        conf = example_conf(repo.url, s3.endpoint_url)
        say(f"Triggering {DAG_ID} with conf:\n" + json.dumps(conf, indent=2))
        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(DAG_ID)
        run = run_pipeline(dag, conf)
        say()
        for line in _task_lines(run):
            say(line)
        if run.state != "success":
            say(f"\nThe run ended {run.state}. Its errors, from {LOG}:")
            for line in _error_lines(LOG):
                say("  " + line)
            return 1
        say()
        for line in _summary(run.xcom("checkout"), run.xcom("publish"), client):
            say(line)
        return 0
    finally:
        git_daemon.stop()
        s3.stop()


def _summary(checkout: dict[str, Any], publish: dict[str, Any], client: Any) -> list[str]:
    artifact = publish["artifact"]
    stored = client.get_object(Bucket=BUCKET, Key=artifact["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"], "object read back differs"
    lines = []
    if artifact["skipped"]:
        lines += [f"Skipped: s3://{BUCKET}/{artifact['key']} already holds this commit's build, so install, bundle, "
                  "typecheck and upload did not run (rm -rf .demo, or change examples/hello-worker, to build again).",
                  ""]
    lines += [
        "== Cloudflare Worker " + ("already stored" if artifact["skipped"] else "built and uploaded") + " ==",
        f"commit        {checkout['commit_sha']}",
        f"artifact URL  {artifact['artifact_url']}",
        f"SHA-256       {artifact['sha256']} (read back from S3 and matched)",
        f"size          {artifact['size_bytes']} bytes (gzip {artifact['gzip_bytes']}, brotli {artifact['brotli_bytes']})",
    ]
    records = [artifact.get(name) for name in ("provenance", "signature")]
    for beside in artifact["files"] + [record for record in records if record]:
        lines.append(f"beside it     {beside['key']} ({beside['kind']}, {beside['size_bytes']} bytes)")
    if artifact.get("signature"):
        lines.append(f"verified      signed provenance, every file's bytes, commit and owner (publish); again with: "
                     f".venv/bin/python -m cloudflare_worker_pipeline.verify --endpoint-url "
                     f"{artifact['artifact_url'].rsplit('/' + BUCKET + '/', 1)[0]} --bucket {BUCKET} --key {artifact['key']} "
                     f"--public-key {DEMO / PUBLIC_KEY}")
    lines += [f"ConfigMaps    {publish['artifact_config_map']}", f"              {publish['manifests_config_map']}",
              "Apply them with: kubectl apply -f " + str(DEMO / "configmaps" / "planton-cloud-pipelines")]
    return lines


def _task_lines(run: Any) -> list[str]:
    """One line per task instance, in the order they started: state and seconds."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id).all()
        rows = [(ti.start_date, ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""),
                 str(getattr(ti.state, "value", ti.state)), ti.duration) for ti in tis]
    rows.sort(key=lambda row: (row[0] is None, row[0] or 0, row[1]))
    return [f"  {name:<28} {state:<10} {f'{seconds:5.1f} s' if seconds is not None and state != 'skipped' else ''}".rstrip()
            for _, name, state, seconds in rows]


def _error_lines(log: Path, limit: int = 20) -> list[str]:
    errors = [line.strip() for line in log.read_text(errors="replace").splitlines()
              if "[error" in line or "ERROR:" in line]
    return errors[-limit:] or [f"(none found: read {log})"]


def _clear_all_but_the_stored_builds() -> None:
    DEMO.mkdir(parents=True, exist_ok=True)
    for entry in DEMO.iterdir():
        if entry.name not in KEPT:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


@contextmanager
def _output_to(log: Path) -> Iterator[TextIO]:
    """Send this process's standard output and error, and its children's, to ``log`` (Airflow's
    loggers hold the streams, so the file descriptors are redirected); yield the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with log.open("a") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


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
