"""A front for the S3 server on 127.0.0.1 that records requests and injects faults, over HTTP or TLS.

Requests pass through untouched (Host included, so SigV4 still verifies at SeaweedFS) unless a
fault matches: answer an S3 error (500 InternalError, 503 SlowDown...), corrupt the body in
flight (the server then answers BadDigest), or drop the connection halfway through the body.
Over TLS it shows what botocore sends where it behaves differently than on plain-http loopback.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from examples.local_stack import BackgroundApp, write_self_signed_certificate

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


@dataclass
class S3Fault:
    """``action``: an HTTP status with ``code`` (an S3 error), "corrupt" or "drop"."""

    method: str
    path: str
    action: int | str
    code: str = "InternalError"
    times: int = 1
    hits: int = 0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class S3Proxy:
    upstream: str
    tls_directory: Path | None = None  # serve HTTPS with a throw-away certificate kept here
    faults: list[S3Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = BackgroundApp()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_directory else 'http'}://127.0.0.1:{self._server.port}"

    @property
    def ca_file(self) -> Path:
        assert self.tls_directory is not None
        return self.tls_directory / "cert.pem"

    def inject(self, fault: S3Fault) -> S3Fault:
        self.faults.append(fault)
        return fault

    def start(self) -> S3Proxy:
        context = None
        if self.tls_directory:
            cert, key = write_self_signed_certificate(self.tls_directory)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server.start(app, ssl_context=context)
        return self

    def stop(self) -> None:
        self._server.stop()

    def _match(self, request: web.Request) -> S3Fault | None:
        for fault in self.faults:
            if fault.hits < fault.times and fault.method == request.method and re.search(fault.path, request.path):
                fault.hits += 1
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._match(request)
        if fault is not None and fault.action == "drop":
            await request.content.read(max(1, (request.content_length or 2) // 2))  # half the body, then hang up
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        body = await request.read()
        self.requests.append(RecordedRequest(request.method, request.path_qs, dict(request.headers), body))
        if fault is not None and isinstance(fault.action, int):
            xml = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                   f"<Message>injected {fault.code}</Message></Error>")
            return web.Response(status=fault.action, body=xml.encode(), content_type="application/xml")
        if fault is not None and fault.action == "corrupt" and body:
            body = bytes([body[0] ^ 0x01]) + body[1:]
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_BY_HOP}
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
