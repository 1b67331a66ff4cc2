"""`make airflow`'s stack, started as a newcomer would: it comes up, its printed trigger works over
REST, the build lands in its S3 server, and Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import REPO, SESSION_DIR


def test_make_airflow_runs_the_pipeline_over_rest_and_stops_on_ctrl_c() -> None:
    import boto3
    from botocore.config import Config

    ready = SESSION_DIR / "stack-ready.json"
    log = open(SESSION_DIR / "stack.log", "wb")  # noqa: SIM115 - closed below
    stack = subprocess.Popen([sys.executable, str(REPO / "examples" / "airflow_stack.py"), "--root",
                              str(SESSION_DIR / "stack"), "--ready-file", str(ready)],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             # As a background job of a non-interactive shell (CI's) starts it: Ctrl-C must work anyway.
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert stack.poll() is None, (SESSION_DIR / "stack.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the stack did not come up in 5 minutes"
            time.sleep(1)
        info = json.loads(ready.read_text())
        printed = (SESSION_DIR / "stack.log").read_text()
        assert f"login     admin / {info['password']}" in printed and "curl -s -X POST" in printed

        # What the printed curl does: a token, then a run with the printed conf.
        token = requests.post(f"{info['url']}/auth/token", timeout=30,
                              json={"username": info["username"], "password": info["password"]}).json()["access_token"]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        dag = f"{info['url']}/api/v2/dags/build_and_upload_cloudflare_worker"
        assert api.get(dag, timeout=10).json()["is_paused"] is False
        run_id = api.post(f"{dag}/dagRuns", json={"logical_date": None, "conf": info["conf"]}, timeout=30).json()["dag_run_id"]
        state = ""
        for _ in range(300):
            state = api.get(f"{dag}/dagRuns/{run_id}", timeout=10).json()["state"]
            if state in ("success", "failed"):
                break
            time.sleep(1)
        assert state == "success"
        s3 = info["s3"]
        client = boto3.client("s3", endpoint_url=s3["endpoint_url"], aws_access_key_id=s3["access_key"],
                              aws_secret_access_key=s3["secret_key"], region_name="auto",
                              config=Config(response_checksum_validation="when_required"))
        keys = [item["Key"] for item in client.list_objects_v2(Bucket=info["conf"]["r2-bucket-name"])["Contents"]]
        bundles = [key for key in keys if key.endswith(".js")]
        assert len(bundles) == 1 and bundles[0].startswith("hello-worker/")
        assert sorted(keys) == sorted(bundles[0] + suffix for suffix in ("", ".map", ".files.json", ".intoto.json",
                                                                                   ".intoto.jsonl", ".egress.json")), keys
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        code = stack.wait(timeout=120)
        log.close()
    assert code == 0
    for pid in json.loads(ready.read_text())["pids"]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), pid
