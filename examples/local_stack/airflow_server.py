"""A running Airflow on 127.0.0.1: api-server, scheduler, dag-processor and triggerer, on PostgreSQL,
with the LocalExecutor, as the service catalogue and the UI meet it in production."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from examples.local_stack import free_port, wait_until

COMPONENTS = ("scheduler", "dag-processor", "triggerer")


@dataclass
class AirflowServer:
    url: str
    username: str
    password: str
    home: Path
    jwt_secret: str
    env: dict[str, str] = field(default_factory=dict)  # what every component runs with
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def token(self) -> str:
        response = requests.post(f"{self.url}/auth/token", json={"username": self.username, "password": self.password},
                                 timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token()}"
        return session

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        api = self.api()
        wait_until(lambda: api.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=10).status_code == 200,
                   f"DAG {dag_id} in the API", timeout=timeout)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
        api = self.api()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = api.get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=10).json()
            if run.get("state") in ("success", "failed"):
                return dict(run)
            time.sleep(2)
        raise TimeoutError(f"run {run_id} of {dag_id} did not finish in {timeout} s")

    def start_component(self, name: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start another component (``celery worker`` ...), logged to ``<home>/<name>.log``, stopped by :meth:`stop`."""
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the component
        process = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), *argv], env={**self.env, **(env or {})},
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:  # SIGTERM by PID: each component shuts down cleanly
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30  # one deadline for all: a busy machine must not add them up
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start_airflow(home: Path, database_url: str, dags_folder: Path, extra_env: dict[str, str], *,
                  port: int | None = None, username: str = "ci", password: str | None = None) -> AirflowServer:
    """Migrate the database and start the api-server, scheduler, dag-processor and triggerer.

    The scheduler settings cut the hand-off between tasks: ``scheduler_idle_sleep_time`` 1 s ->
    0.1 s took the example's trigger-to-success from about 16.5 s to about 10 s on 2 cores.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    password = password or secrets.token_urlsafe(16)
    jwt_secret = secrets.token_urlsafe(48)
    passwords = home / "passwords.json"
    passwords.touch(mode=0o600)  # created private, before the password is in it
    passwords.chmod(0o600)
    passwords.write_text(json.dumps({username: password}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{username}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__API_AUTH__JWT_ISSUER": "cloudflare-worker-pipeline-tests",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        **extra_env,
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
    if migrated.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrated.stdout[-3000:]}\n{migrated.stderr[-3000:]}")
    server = AirflowServer(url=f"http://127.0.0.1:{port}", username=username, password=password, home=home,
                           jwt_secret=jwt_secret, env=env)
    for component in ("api-server", *COMPONENTS):
        log = open(home / f"{component}.log", "ab")  # noqa: SIM115 - lives as long as the component
        argv = [airflow, component] + (["--port", str(port), "--host", "127.0.0.1"] if component == "api-server" else [])
        server.processes.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def healthy() -> bool:
        try:
            return requests.get(f"{server.url}/api/v2/monitor/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, "Airflow api-server", timeout=180)
    except TimeoutError:
        server.stop()
        raise RuntimeError(f"Airflow did not start; see {home}/api-server.log") from None
    return server
