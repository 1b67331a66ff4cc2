"""The Kubernetes mode's egress proxy as its Deployment runs it (``python -m
cloudflare_worker_pipeline.egress_proxy``, examples/kubernetes/egress-proxy.yaml), on 127.0.0.1:
settings in, a listener per kind of pod, a JSON line per connection, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import upper_echo_server

SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"


@pytest.fixture
def registry() -> Iterator[int]:
    """A stand-in registry mirror on 127.0.0.1."""
    with upper_echo_server() as port:
        yield port


def _connect(port: int, target: str, payload: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = client.recv(4096)
        if payload and answer.startswith(b"HTTP/1.1 200"):
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            while chunk := client.recv(4096):
                answer += chunk
        return answer


def test_the_deployment_admits_each_kind_of_pod_only_where_its_stage_may_go_and_logs_every_connection(
        registry: int) -> None:
    env = {**os.environ, SETTING + "ALLOWED_REGISTRY_HOSTS": "registry.npmjs.org",
           SETTING + "INSTALL_ENV": json.dumps({"npm_config_registry": f"http://127.0.0.1:{registry}/"}),
           SETTING + "ALLOWED_GIT_HOSTS": "github.com"}
    proxy = subprocess.Popen([sys.executable, "-m", "cloudflare_worker_pipeline.egress_proxy", "--host", "127.0.0.1",
                              "--registry-port", "0", "--git-port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None
        listening = {line["listener"]: line for line in (json.loads(proxy.stdout.readline()) for _ in range(2))}
        ports = {name: int(line["listening"].rsplit(":", 1)[1]) for name, line in listening.items()}
        assert listening["registry"]["hosts"] == ["registry.npmjs.org", "127.0.0.1"]
        assert listening["git"]["hosts"] == ["github.com"] and listening["git"]["ports"] == [22, 443, 9418]

        mirror = _connect(ports["registry"], f"127.0.0.1:{registry}", b"GET /hono")
        from_git_pod = _connect(ports["git"], f"127.0.0.1:{registry}")  # a checkout pod asking for the mirror
        metadata = _connect(ports["registry"], "169.254.169.254:443")
        stray = _connect(ports["registry"], "example.com:443")
        proxy.send_signal(signal.SIGTERM)
        rest, _ = proxy.communicate(timeout=30)
    finally:
        proxy.kill()
    logged = [json.loads(line) for line in rest.splitlines()]

    assert mirror.startswith(b"HTTP/1.1 200") and mirror.endswith(b"GET /HONO"), mirror
    assert from_git_pod.startswith(b"HTTP/1.1 403") and b"refused" in from_git_pod, from_git_pod
    assert metadata.startswith(b"HTTP/1.1 403") and stray.startswith(b"HTTP/1.1 403")
    assert proxy.returncode == 0, "SIGTERM stops it cleanly"
    assert sorted((line["listener"], line["host"], line["allowed"]) for line in logged) == [
        ("git", "127.0.0.1", False), ("registry", "127.0.0.1", True), ("registry", "169.254.169.254", False),
        ("registry", "example.com", False)]
    allowed = next(line for line in logged if line["allowed"])
    assert (allowed["client"], allowed["port"], allowed["bytes_out"], allowed["bytes_in"]) == ("127.0.0.1", registry, 9, 9)
