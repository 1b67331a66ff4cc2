"""A throw-away Redis on 127.0.0.1 (Debian's ``redis-server``): the Celery broker of the scale-out test.

It requires a password (``requirepass``): without one, anything on the host that reaches the port,
a build's code included, could enqueue a workload for the Celery workers (issue 19)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from examples.local_stack import free_port, port_open, wait_until


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    password: str

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_redis(data_dir: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make system-deps` installs Debian's redis-server")
    data_dir.mkdir(parents=True, exist_ok=True)
    port, password = free_port(), secrets.token_hex(24)
    config = data_dir / "redis.conf"  # the password in a file of mode 0600, not on the command line
    config.touch(mode=0o600)
    config.write_text(f"requirepass {password}\n")
    log = open(data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([binary, str(config), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(data_dir)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: port_open(port), "redis-server", timeout=30)
    return RedisServer(port, process, password)

