"""A private git server over HTTPS on 127.0.0.1: ``git http-backend`` behind basic auth and TLS.

Only requests carrying the expected username and token are served, as a private GitHub or GitLab
repository would; git reaches it through the pipeline's git connection.
"""

from __future__ import annotations

import base64
import http.server
import os
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from examples.local_stack import free_port, write_self_signed_certificate


@dataclass
class PrivateGitServer:
    root: Path
    username: str
    token: str
    port: int = 0
    tls: bool = True  # False: plain http://, as some internal git servers are

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "cert.pem"

    def url(self, name: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{name}.git"

    def start(self) -> PrivateGitServer:
        write_self_signed_certificate(self.root / "tls")
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        root = self.root

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def serve(self) -> None:
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {**os.environ, "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                       "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": "ci",
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(": ")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self.serve()

            def do_POST(self) -> None:
                self.serve()

        self.port = free_port()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.root / "tls" / "cert.pem", self.root / "tls" / "key.pem")
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="git-https", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
