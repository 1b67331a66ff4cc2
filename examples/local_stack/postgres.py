"""A throw-away PostgreSQL server on 127.0.0.1 (Debian's ``postgresql``), as production Airflow runs.

Password authentication over TCP (``scram-sha-256``), never ``trust``: a build's code that reached
the port of a trust-auth server would be a superuser of Airflow's metadata database (issue 19). The
superuser logs in only through the Unix socket in the server's directory, as its OS user (``peer``).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from examples.local_stack import free_port, port_open, wait_until


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make system-deps` installs Debian's postgresql")
    return found[-1]


@dataclass
class Postgres:
    data_dir: Path
    port: int
    user: str
    password: str  # the airflow role's, random per server

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow:{self.password}@127.0.0.1:{self.port}/airflow"

    def _as_owner(self, *argv: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *argv], check=True, capture_output=True, text=True)

    def stop(self) -> None:
        self._as_owner(_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "stop")


def start_postgres(data_dir: Path) -> Postgres:
    """initdb, start on a free loopback port, create database and role ``airflow``.

    ``data_dir``'s parent must be traversable by the ``postgres`` user (e.g. a directory in /tmp).
    """
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name  # initdb refuses root
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    if os.geteuid() == 0:
        data_dir.parent.chmod(0o755)  # the postgres user must reach its directory
        shutil.chown(data_dir, user)
    server = Postgres(data_dir=data_dir / "data", port=free_port(), user=user, password=secrets.token_urlsafe(24))
    server._as_owner(_bin("initdb"), "-D", str(server.data_dir), "-U", user, "--auth-local=peer",
                     "--auth-host=scram-sha-256", "-E", "UTF8")
    server._as_owner(_bin("pg_ctl"), "-D", str(server.data_dir), "-l", str(data_dir / "server.log"), "-w", "-o",
                     f"-p {server.port} -c listen_addresses=127.0.0.1 -k {data_dir} -c max_connections=200", "start")
    wait_until(lambda: port_open(server.port), "PostgreSQL", timeout=30)
    psql = [_bin("psql"), "-h", str(data_dir), "-p", str(server.port), "-U", user, "-d", "postgres", "-v", "ON_ERROR_STOP=1"]
    server._as_owner(*psql, "-c", f"CREATE ROLE airflow LOGIN PASSWORD '{server.password}'")  # url-safe characters
    server._as_owner(*psql, "-c", "CREATE DATABASE airflow OWNER airflow")
    return server
