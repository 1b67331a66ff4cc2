"""Celery workers sharing one machine, each under its own hostname, as if on separate hosts."""

from __future__ import annotations

import os
import socket
import subprocess

from examples.local_stack import REPO_ROOT
from examples.local_stack.airflow_server import AirflowServer


def worker_hostname() -> str:
    """``[core] hostname_callable`` for these workers: the name each was started with."""
    return os.environ.get("CFW_WORKER_HOSTNAME") or socket.getfqdn()


def start_celery_worker(airflow: AirflowServer, name: str, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
    """``airflow celery worker`` named ``name``: its Celery node and the hostname its task instances record."""
    return airflow.start_component(
        f"celery-{name}", "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(concurrency),
        "--skip-serve-logs",
        env={"CFW_WORKER_HOSTNAME": name, "PYTHONPATH": str(REPO_ROOT),
             "AIRFLOW__CORE__HOSTNAME_CALLABLE": "examples.local_stack.celery_workers.worker_hostname"},
    )
