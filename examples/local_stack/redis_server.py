"""A throw-away Redis on 127.0.0.1 (Debian's ``redis-server``): the Celery broker of the scale-out test."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from examples.local_stack import free_port, port_open, wait_until


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_redis(data_dir: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make system-deps` installs Debian's redis-server")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(data_dir)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: port_open(port), "redis-server", timeout=30)
    return RedisServer(port, process)

