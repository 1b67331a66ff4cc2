"""The egress proxy on its own: what it lets through, what it refuses, and what it records.

An upstream on 127.0.0.1 stands in for a registry; the policy names that address explicitly, as
the tests' settings do. Nothing here leaves the machine.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from cloudflare_worker_pipeline.egress_log import egress_log, egress_log_key
from cloudflare_worker_pipeline.execution.egress import CONNECT_JS, EgressPolicy, EgressProxy, log_egress, summarize

from tests.helpers import upper_echo_server


@pytest.fixture
def upstream() -> Iterator[int]:
    """A stand-in registry on 127.0.0.1."""
    with upper_echo_server() as port:
        yield port


def _ask(proxy: EgressProxy, request: bytes, then: bytes = b"") -> bytes:
    """Send ``request`` to the proxy's socket, then ``then`` once it answers; all it sent back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(proxy.socket_path))
        client.sendall(request)
        answer = client.recv(4096)
        if then and answer.startswith(b"HTTP/1.1 200"):
            client.sendall(then)
            client.shutdown(socket.SHUT_WR)
            while chunk := client.recv(4096):
                answer += chunk
        return answer


def test_an_allowed_connect_is_spliced_and_its_bytes_are_recorded(upstream: int) -> None:
    proxy = EgressProxy(EgressPolicy(hosts=("127.0.0.1",), ports=frozenset({upstream}), setting="allowed_registry_hosts"))
    answer = _ask(proxy, f"CONNECT 127.0.0.1:{upstream} HTTP/1.1\r\n\r\n".encode(), b"hello registry")
    entries = summarize(proxy.close())

    assert answer.endswith(b"HELLO REGISTRY"), answer
    assert entries == [{"host": "127.0.0.1", "port": upstream, "allowed": True, "reason": "", "connections": 1,
                        "bytes_out": 14, "bytes_in": 14}]


@pytest.mark.parametrize("target,why", [
    ("169.254.169.254:443", "not allowed here"),  # a metadata endpoint, not on the allowlist
    ("10.0.0.5:443", "not allowed here"),  # a private neighbour
    ("127.0.0.1:5432", "port 5432 is not one this stage may use"),  # the allowed host, another port
])
def test_what_the_policy_does_not_admit_is_refused_before_any_connection_and_recorded(upstream: int, target: str,
                                                                                     why: str) -> None:
    proxy = EgressProxy(EgressPolicy(hosts=("127.0.0.1", "registry.npmjs.org"), ports=frozenset({upstream, 443}),
                                     setting="allowed_registry_hosts"))
    answer = _ask(proxy, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    [entry] = summarize(proxy.close())

    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert why in entry["reason"] and why in answer.decode()
    assert (entry["allowed"], entry["connections"], entry["bytes_in"], entry["bytes_out"]) == (False, 1, 0, 0)


def test_a_host_whose_name_resolves_to_loopback_is_refused_whatever_the_allowlist_says() -> None:
    proxy = EgressProxy(EgressPolicy(hosts=("localhost",), ports=frozenset({443}), setting="allowed_registry_hosts"))
    answer = _ask(proxy, b"CONNECT localhost:443 HTTP/1.1\r\n\r\n")
    [entry] = summarize(proxy.close())
    assert answer.startswith(b"HTTP/1.1 403") and "loopback, private or link-local" in entry["reason"], entry


def test_connections_are_grouped_by_host_port_and_outcome_refusals_last(upstream: int) -> None:
    proxy = EgressProxy(EgressPolicy(hosts=("127.0.0.1",), ports=frozenset({upstream}), setting="allowed_registry_hosts"))
    for _ in range(3):
        _ask(proxy, f"CONNECT 127.0.0.1:{upstream} HTTP/1.1\r\n\r\n".encode(), b"abc")
    _ask(proxy, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    entries = summarize(proxy.close())
    assert [(e["host"], e["allowed"], e["connections"], e["bytes_out"], e["bytes_in"]) for e in entries] == [
        ("127.0.0.1", True, 3, 9, 9), ("example.com", False, 1, 0, 0)]


class _Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, event: str, *args: object, **_: object) -> None:
        self.lines.append(("info", event % args))

    def warning(self, event: str, *args: object, **_: object) -> None:
        self.lines.append(("warning", event % args))

    def error(self, event: str, *args: object, **_: object) -> None:
        self.lines.append(("error", event % args))


def test_the_log_says_what_was_reached_and_warns_of_each_refusal() -> None:
    log = _Lines()
    log_egress(log, "install.sh", [
        {"host": "registry.npmjs.org", "port": 443, "allowed": True, "reason": "", "connections": 4,
         "bytes_out": 900, "bytes_in": 120000},
        {"host": "evil.example", "port": 443, "allowed": False, "reason": "host evil.example is not allowed here",
         "connections": 1, "bytes_out": 0, "bytes_in": 0}])
    assert log.lines == [
        ("info", "egress of install.sh: registry.npmjs.org:443, 4 connection(s), 900 bytes out, 120000 bytes in"),
        ("warning", "egress of install.sh: refused evil.example:443, 1 connection(s): host evil.example is not allowed here")]
    quiet = _Lines()
    log_egress(quiet, "checkout.sh", [])
    assert quiet.lines == [("info", "egress of checkout.sh: no connections")]


def test_the_stored_log_tells_an_unrecorded_stage_from_one_that_reached_nothing() -> None:
    body = egress_log(key="w/b.js", commit="d" * 40, invocation="build/manual_1",
                      stages={"checkout": [], "install": None})
    document = json.loads(body)
    assert document["stages"] == {"checkout": {"recorded": True, "connections": []},
                                  "install": {"recorded": False, "connections": []}}
    assert (document["object"], document["commit"], document["invocationId"]) == ("w/b.js", "d" * 40, "build/manual_1")
    assert egress_log_key("w/b.js") == "w/b.js.egress.json"


class _UpstreamProxy(socketserver.BaseRequestHandler):
    """A network's own HTTP proxy, standing in for the target too: it records each CONNECT's head,
    answers with ``status``, and then echoes in upper case what comes through the tunnel."""

    heads: list[str]
    status: bytes

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and (chunk := self.request.recv(4096)):
            head += chunk
        self.heads.append(head.decode("latin-1"))
        self.request.sendall(self.status + b"\r\n\r\n")
        if self.status.startswith(b"HTTP/1.1 200"):
            while chunk := self.request.recv(4096):
                self.request.sendall(chunk.upper())


@contextlib.contextmanager
def upstream_proxy(status: bytes = b"HTTP/1.1 200 Connection established") -> Iterator[tuple[str, list[str]]]:
    """``(its URL with credentials, the heads it received)``."""
    heads: list[str] = []
    handler = type("Handler", (_UpstreamProxy,), {"heads": heads, "status": status})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://builds:s%3Acret@127.0.0.1:{server.server_address[1]}", heads
    finally:
        server.shutdown()
        server.server_close()


def test_behind_an_upstream_proxy_an_admitted_connect_goes_through_it_with_its_credentials() -> None:
    with upstream_proxy() as (url, heads):
        proxy = EgressProxy(EgressPolicy(hosts=("127.0.0.1",), ports=frozenset({443}),
                                         setting="allowed_registry_hosts", upstream=url))
        answer = _ask(proxy, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n", b"through the upstream")
        [entry] = summarize(proxy.close())

    assert answer.endswith(b"THROUGH THE UPSTREAM"), answer
    [head] = heads
    assert head.startswith("CONNECT 127.0.0.1:443 HTTP/1.1\r\n"), head
    assert "Proxy-Authorization: Basic " + base64.b64encode(b"builds:s:cret").decode() in head, head
    assert (entry["allowed"], entry["bytes_out"], entry["bytes_in"]) == (True, 20, 20)


def test_behind_an_upstream_proxy_what_the_policy_refuses_never_reaches_it() -> None:
    with upstream_proxy() as (url, heads):
        proxy = EgressProxy(EgressPolicy(hosts=("127.0.0.1",), ports=frozenset({443}),
                                         setting="allowed_registry_hosts", upstream=url))
        answers = [_ask(proxy, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
                   for target in ("169.254.169.254:443", "example.com:443", "127.0.0.1:5432")]
        entries = summarize(proxy.close())

    assert all(answer.startswith(b"HTTP/1.1 403") for answer in answers), answers
    assert heads == [] and not any(entry["allowed"] for entry in entries)


def test_an_upstream_proxy_refusing_the_tunnel_fails_the_connection_naming_its_answer() -> None:
    with upstream_proxy(b"HTTP/1.1 407 Proxy Authentication Required") as (url, _):
        proxy = EgressProxy(EgressPolicy(hosts=("127.0.0.1",), ports=frozenset({443}),
                                         setting="allowed_registry_hosts", upstream=url))
        answer = _ask(proxy, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n")
        [entry] = summarize(proxy.close())

    assert answer.startswith(b"HTTP/1.1 502"), answer
    assert "407 Proxy Authentication Required" in entry["reason"] and not entry["allowed"], entry
    assert "s:cret" not in entry["reason"] and "s%3Acret" not in entry["reason"]


def test_the_git_proxy_command_delivers_every_byte_a_server_sent_before_closing() -> None:
    """git:// and ssh:// go through ``CONNECT_JS``: a git daemon sends its pack and closes. Exiting
    on the socket's end before stdout drained cut large packs short ("fatal: early EOF")."""
    payload = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def send_and_close() -> None:
            connection, _ = server.accept()
            with connection:
                connection.sendall(payload)

        sender = threading.Thread(target=send_and_close, daemon=True)
        sender.start()
        proxy = EgressProxy(EgressPolicy(hosts=("127.0.0.1",), ports=frozenset({port}), setting="allowed_git_hosts"))
        command = subprocess.Popen(["node", "-e", CONNECT_JS, "127.0.0.1", str(port)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, env={"PATH": os.environ["PATH"],
                                                                "CFW_EGRESS_SOCKET": str(proxy.socket_path)})
        received = bytearray()
        assert command.stdout is not None
        while chunk := command.stdout.read(64 * 1024):  # a reader slower than the sender, as index-pack is
            received += chunk
            time.sleep(0.001)
        command.wait(30)
        sender.join(10)
        records = proxy.close()

    assert records[0].bytes_in == len(payload), "the proxy itself lost bytes"
    assert len(received) == len(payload) and received == payload
    assert command.returncode == 0
