"""The egress proxy: the only way out of a local-mode stage's sandbox.

Every sandbox has its own network namespace with nothing but a private loopback, so a repository's
code cannot reach the worker's neighbours: the metadata database, the broker, the API server, a
metadata endpoint (issue 19). The stages that must fetch (checkout: git; install: the package
registry) get this proxy instead, run by the Airflow task on a Unix socket that is bound into the
sandbox, where a small relay (``RELAY_JS``) makes it ``127.0.0.1:<port>`` for ``HTTPS_PROXY``.

It speaks HTTP CONNECT (and forwards plain-HTTP requests) and admits only the hosts and ports of
the stage's :class:`EgressPolicy`. It resolves each name itself and connects to the address it
checked, refusing loopback, private, link-local and other non-public addresses unless the
deployment's setting lists them, whatever DNS says. Every connection is recorded, allowed or not.

Behind a network's own HTTP proxy (``egress_upstream_proxy``) it checks the same way, then asks
that proxy to CONNECT to the host by name, so the upstream's own allowlist by name still applies.
"""

from __future__ import annotations

import base64
import contextlib
import select
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cloudflare_worker_pipeline.allowed_hosts import HostNotAllowedError, check_host
from cloudflare_worker_pipeline.execution.base import TaskLog
from cloudflare_worker_pipeline.results import EgressEntry

RELAY_PORT = 3128  # inside the sandbox's own loopback
MAX_HEAD = 16 * 1024

# The relay inside the sandbox: 127.0.0.1:RELAY_PORT to the proxy's Unix socket, byte for byte.
RELAY_JS = r"""
const net = require("net"), fs = require("fs");
const [socketPath, port, ready] = [process.env.CFW_EGRESS_SOCKET, +process.env.CFW_EGRESS_PORT, process.argv[1]];
net.createServer((client) => {
  const upstream = net.connect(socketPath);
  client.pipe(upstream); upstream.pipe(client);
  client.on("error", () => upstream.destroy()); upstream.on("error", () => client.destroy());
}).listen(port, "127.0.0.1", () => fs.writeFileSync(ready, "ready"));
"""

# git:// and ssh:// through the proxy (GIT_PROXY_COMMAND, ssh's ProxyCommand): CONNECT, then stdio.
CONNECT_JS = r"""
const net = require("net");
const [host, port] = process.argv.slice(1);
const socket = net.connect(process.env.CFW_EGRESS_SOCKET, () => {
  socket.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
});
let head = Buffer.alloc(0);
const onData = (chunk) => {
  head = Buffer.concat([head, chunk]);
  const end = head.indexOf("\r\n\r\n");
  if (end < 0) return;
  socket.removeListener("data", onData);
  const status = head.subarray(0, end).toString();
  if (!/^HTTP\/1\.[01] 200/.test(status)) {
    process.stderr.write(`egress proxy: ${status.split("\r\n")[0]}: ${head.subarray(end + 4).toString()}\n`);
    process.exit(1);
  }
  process.stdout.write(head.subarray(end + 4));
  process.stdin.pipe(socket); socket.pipe(process.stdout);
};
socket.on("data", onData);
socket.on("error", (error) => { process.stderr.write(`egress proxy: ${error.message}\n`); process.exit(1); });
// Exit once stdout has taken every byte: a pipe to git may still hold the pack's last chunks.
socket.on("end", () => process.stdout.write("", () => process.exit(0)));
"""


class EgressRefusedError(Exception):
    """The stage's policy does not admit this host and port."""


@dataclass(frozen=True)
class EgressPolicy:
    """Which hosts and ports a stage may reach, in the ``allowed_hosts`` vocabulary: host patterns,
    addresses and networks; a non-public address only when an address or network entry covers it.

    :param setting: the setting that names the hosts, for the refusal messages.
    :param upstream: the network's own HTTP proxy every admitted connection goes through
        (``http://[user:password@]host:port``), or "" to connect directly.
    """

    hosts: tuple[str, ...]
    ports: frozenset[int]
    setting: str
    upstream: str = field(default="", repr=False)  # may hold the upstream's credentials

    def address_for(self, host: str, port: int) -> str:
        """The address to connect to for ``host:port``, checked; raise :class:`EgressRefusedError`."""
        if port not in self.ports:
            raise EgressRefusedError(f"port {port} is not one this stage may use ({', '.join(map(str, sorted(self.ports)))})")
        try:
            return str(check_host(host, self.hosts, parameter="egress", setting=self.setting)[0])
        except HostNotAllowedError as error:
            raise EgressRefusedError(str(error).replace("Invalid parameter 'egress': ", "")) from None


@dataclass
class EgressRecord:
    """One connection a stage asked for: where to, whether it was allowed, and the bytes each way."""

    host: str
    port: int
    allowed: bool
    reason: str = ""
    bytes_out: int = 0
    bytes_in: int = 0
    client: str = ""  # the asking pod's address (a TCP listener); "" on the sandbox's Unix socket


@dataclass
class EgressProxy:
    """A CONNECT proxy for one stage, on a Unix socket in a private directory; or, for the
    Kubernetes mode's Deployment, on a TCP address (``listen``) for every pod of a kind.

    :param on_record: called with each connection's record once it ends (the Deployment logs it).
    :param keep_records: keep every record for :meth:`close` (a stage's proxy); a long-running
        proxy does not.
    """

    policy: EgressPolicy
    listen: tuple[str, int] | None = None
    on_record: Callable[[EgressRecord], None] | None = None
    keep_records: bool = True
    records: list[EgressRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.listen is None:
            self.directory: Path | None = Path(tempfile.mkdtemp(prefix="cfw-egress-"))
            self.socket_path = self.directory / "proxy.sock"  # short: a Unix socket's path has 107 bytes at most
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(self.socket_path))
        else:
            self.directory = None
            self._server = socket.create_server(self.listen, family=socket.AF_INET6 if ":" in self.listen[0]
                                                else socket.AF_INET, reuse_port=False)
        self._server.listen(64)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="egress-proxy", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The TCP address it listens on (a ``listen`` port of 0 picks a free one)."""
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> list[EgressRecord]:
        """Stop accepting, and return what the stage asked for."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=5)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        with self._lock:
            return list(self.records)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, peer = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, peer[0] if isinstance(peer, tuple) else ""),
                             name="egress-connection", daemon=True).start()

    def _serve(self, client: socket.socket, peer: str) -> None:
        with client:
            head = _read_head(client)
            if head is None:
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, _, rest = request_line.partition(" ")
            target = rest.rsplit(" ", 1)[0]
            try:
                host, port, forward = _target(method, target, head)
            except ValueError as error:
                client.sendall(_response(400, str(error)))
                return
            record = EgressRecord(host=host, port=port, allowed=False, client=peer)
            if self.keep_records:
                with self._lock:
                    self.records.append(record)
            try:
                self._connect(client, record, forward)
            finally:
                if self.on_record is not None:
                    self.on_record(record)

    def _connect(self, client: socket.socket, record: EgressRecord, forward: bytes | None) -> None:
        host, port = record.host, record.port
        try:
            address = self.policy.address_for(host, port)
        except EgressRefusedError as error:
            record.reason = str(error)
            client.sendall(_response(403, f"egress to {host}:{port} refused: {error}"))
            return
        try:
            upstream, early = (_tunnel(self.policy.upstream, host, port) if self.policy.upstream
                               else (socket.create_connection((address, port), timeout=30), b""))
        except OSError as error:
            record.reason = f"unable to connect to {host}:{port} ({error.strerror or error})"
            client.sendall(_response(502, record.reason))
            return
        record.allowed = True
        with upstream:
            upstream.settimeout(None)
            if forward is None:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n" + early)
                record.bytes_in += len(early)
            else:
                upstream.sendall(forward)
                record.bytes_out += len(forward)
            _splice(client, upstream, record)


class UpstreamRefusedError(OSError):
    """The network's own proxy did not open the tunnel."""


def _tunnel(proxy_url: str, host: str, port: int) -> tuple[socket.socket, bytes]:
    """A connection to ``host:port`` through the upstream proxy's CONNECT, and what the server
    already sent past the proxy's answer (an SSH server speaks first)."""
    url = urlsplit(proxy_url)
    connection = socket.create_connection((url.hostname or "", url.port or 80), timeout=30)
    head = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
    if url.username is not None:
        token = base64.b64encode(f"{unquote(url.username)}:{unquote(url.password or '')}".encode()).decode()
        head.append(f"Proxy-Authorization: Basic {token}")
    try:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        answer = _read_head(connection)
        status = (answer or b"").split(b"\r\n", 1)[0].decode("latin-1")
        if answer is None or status.split(" ")[1:2] != ["200"]:
            raise UpstreamRefusedError(f"the upstream proxy {url.hostname}:{url.port} answered "
                                       f"{status or 'nothing'!r}")
    except OSError:
        connection.close()
        raise
    return connection, answer.partition(b"\r\n\r\n")[2]


def _read_head(client: socket.socket) -> bytes | None:
    client.settimeout(30)
    head = b""
    while b"\r\n\r\n" not in head:
        try:
            chunk = client.recv(4096)
        except OSError:
            return None
        if not chunk or len(head) > MAX_HEAD:
            return None
        head += chunk
    client.settimeout(None)
    return head


def _target(method: str, target: str, head: bytes) -> tuple[str, int, bytes | None]:
    """(host, port, bytes to send first): CONNECT sends nothing first; a plain-HTTP request
    (absolute form, ``GET http://host/...``) is sent on in origin form."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"CONNECT needs host:port, got {target!r}")
        return host.strip("[]").lower(), int(port), None
    if target.startswith("http://"):
        authority = target[len("http://"):].split("/", 1)[0]
        host, _, port = authority.rpartition(":") if authority.rsplit(":", 1)[-1].isdigit() else (authority, "", "80")
        return host.strip("[]").lower(), int(port), _origin_form(head, authority)
    raise ValueError(f"only CONNECT and plain-HTTP requests in absolute form go through, got {method} {target!r}")


def _origin_form(head: bytes, authority: str) -> bytes:
    """A proxied plain-HTTP request as its server expects it: ``GET /path``, with no proxy headers,
    one request per connection (the next request, perhaps to another host, comes through anew)."""
    header, _, body = head.partition(b"\r\n\r\n")
    request_line, *fields = header.decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ", 2)
    path = target[len("http://") + len(authority):] or "/"
    kept = [f for f in fields if f.split(":", 1)[0].strip().lower() not in {"connection", "proxy-connection",
                                                                             "proxy-authorization", "keep-alive"}]
    return "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1") + body


def _response(status: int, message: str) -> bytes:
    body = (message + "\n").encode()
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def _splice(client: socket.socket, upstream: socket.socket, record: EgressRecord) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [client, upstream]
    while True:
        readable, _, failed = select.select(sockets, [], sockets, 300)
        if failed or not readable:
            return
        for source in readable:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    (upstream if source is client else client).shutdown(socket.SHUT_WR)
                sockets.remove(source)
                if not sockets or source is upstream:
                    return
                continue
            try:
                (upstream if source is client else client).sendall(data)
            except OSError:
                return
            if source is client:
                record.bytes_out += len(data)
            else:
                record.bytes_in += len(data)


def proxy_env(url: str) -> dict[str, str]:
    """Every package manager's and git's proxy variable set to ``url``, with no exceptions."""
    return {**dict.fromkeys(("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "npm_config_https_proxy",
                             "npm_config_proxy", "YARN_HTTPS_PROXY", "YARN_HTTP_PROXY"), url),
            "NO_PROXY": "", "no_proxy": ""}


def sandbox_env(proxy: EgressProxy, home: Path) -> dict[str, str]:
    """What a stage's environment needs to go out through ``proxy``: the relay's address for every
    package manager's proxy variable, and git's proxy command for git:// and ssh://."""
    git_proxy = str(home / ".cfw-egress-git-proxy")
    return {
        "CFW_EGRESS_SOCKET": str(proxy.socket_path), "CFW_EGRESS_PORT": str(RELAY_PORT),
        "CFW_EGRESS_RELAY": RELAY_JS, "CFW_EGRESS_CONNECT": CONNECT_JS, "CFW_EGRESS_GIT_PROXY": git_proxy,
        **proxy_env(f"http://127.0.0.1:{RELAY_PORT}"),
        "GIT_PROXY_COMMAND": git_proxy,
        "GIT_SSH_COMMAND": f"ssh -o ProxyCommand='{git_proxy} %h %p'",
    }


def summarize(records: list[EgressRecord]) -> list[EgressEntry]:
    """The stage's egress log: its connections grouped by host, port and outcome, refusals last."""
    entries: dict[tuple[str, int, bool, str], EgressEntry] = {}
    for record in records:
        key = (record.host, record.port, record.allowed, record.reason)
        entry = entries.setdefault(key, EgressEntry(host=record.host, port=record.port, allowed=record.allowed,
                                                    reason=record.reason, connections=0, bytes_out=0, bytes_in=0))
        entry["connections"] += 1
        entry["bytes_out"] += record.bytes_out
        entry["bytes_in"] += record.bytes_in
    return sorted(entries.values(), key=lambda e: (not e["allowed"], e["host"], e["port"], e["reason"]))


def log_egress(log: TaskLog, script: str, entries: list[EgressEntry]) -> None:
    """One line per host, port and outcome: what the stage reached through the proxy, and what it was refused."""
    if not entries:
        log.info("egress of %s: no connections", script)
    for entry in entries:
        if entry["allowed"]:
            log.info("egress of %s: %s:%d, %d connection(s), %d bytes out, %d bytes in", script, entry["host"],
                     entry["port"], entry["connections"], entry["bytes_out"], entry["bytes_in"])
        else:
            log.warning("egress of %s: refused %s:%d, %d connection(s): %s", script, entry["host"], entry["port"],
                        entry["connections"], entry["reason"])
