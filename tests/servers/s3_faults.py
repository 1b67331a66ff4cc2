"""A fault-injecting HTTP front for the S3 server on 127.0.0.1.

Requests pass through untouched (Host included, so SigV4 still verifies at SeaweedFS) unless a
fault matches: answer an S3 error (500 InternalError, 503 SlowDown...), corrupt the body in
flight (the server then answers BadDigest), or drop the connection halfway through the body.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.servers import free_port

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
class FaultyS3Proxy:
    upstream: str
    port: int = 0
    faults: list[S3Fault] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, fault: S3Fault) -> S3Fault:
        self.faults.append(fault)
        return fault

    def start(self) -> FaultyS3Proxy:
        self.port = free_port()
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="s3-faults", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("S3 fault proxy did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

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
            if request.method == "HEAD":
                reply_headers["Content-Length"] = upstream.headers.get("Content-Length", "0")
                return web.Response(status=upstream.status, headers=reply_headers)
            return web.Response(status=upstream.status, headers=reply_headers, body=payload)
