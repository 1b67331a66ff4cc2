"""An HTTPS front for the S3 server that records each request's headers.

Over plain-http loopback botocore never takes its aws-chunked trailer path, but over HTTPS it
does, and R2 rejects what it sends there. This proxy terminates TLS on 127.0.0.1 with a
throw-away certificate, records the request line and headers, and forwards the request untouched
(Host included, so SigV4 still verifies) to the plain-http S3 server.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TLSProxy:
    upstream: str
    directory: Path
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "cert.pem"

    def start(self) -> TLSProxy:
        self._write_certificate()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.directory / "cert.pem", self.directory / "key.pem")
        self.port = free_port()
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._forward)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="tls-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("TLS proxy did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_BY_HOP}
        self.requests.append(RecordedRequest(request.method, request.path_qs, dict(request.headers), body))
        async with (
            aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")) as session,
            session.request(request.method, self.upstream + request.path_qs, headers=headers, data=body,
                            allow_redirects=False) as upstream,
        ):
                payload = await upstream.read()
                reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                if request.method == "HEAD":  # no body, but the object's length is the answer
                    reply_headers["Content-Length"] = upstream.headers.get("Content-Length", "0")
                    return web.Response(status=upstream.status, headers=reply_headers)
                return web.Response(status=upstream.status, headers=reply_headers, body=payload)

    def _write_certificate(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        (self.directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.directory / "key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
