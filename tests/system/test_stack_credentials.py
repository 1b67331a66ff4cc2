"""The stacks this project starts (`make airflow`, the tests, the bench) keep their metadata
database and broker behind passwords. A build's code on the same host once reached a trust-auth
PostgreSQL as its superuser and a password-less Redis, and from either ran code on the scheduler or
a Celery worker (issue 19): nothing reaching their ports without the password gets in."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
import redis

from tests.conftest import SESSION_DIR


@pytest.fixture(scope="module")
def postgres():
    from examples.local_stack.postgres import start_postgres

    server = start_postgres(Path(tempfile.mkdtemp(prefix="cfw-credentials-pg-")) / "pg")
    yield server
    server.stop()


@pytest.mark.parametrize("user,password", [("postgres", None), ("airflow", None), ("airflow", "airflow"),
                                           ("postgres", "postgres")])
def test_postgres_refuses_tcp_logins_without_the_password(postgres, user: str, password: str | None) -> None:
    with pytest.raises(psycopg2.OperationalError, match=r"password authentication failed|no password supplied"):
        psycopg2.connect(host="127.0.0.1", port=postgres.port, user=user, dbname="postgres",
                         **({"password": password} if password is not None else {}), connect_timeout=10)


def test_postgres_admits_airflow_with_its_url(postgres) -> None:
    url = urlsplit(postgres.url)
    with psycopg2.connect(host=url.hostname, port=url.port, user=url.username, password=url.password,
                          dbname="airflow", connect_timeout=10) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False,)  # and not as a superuser


def test_redis_refuses_commands_without_the_password() -> None:
    from examples.local_stack.redis_server import start_redis

    server = start_redis(SESSION_DIR / "credentials-redis")
    try:
        anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.lpush("celery", "a workload")
        assert redis.Redis.from_url(server.url, socket_timeout=10).ping() is True
        assert server.password not in (SESSION_DIR / "credentials-redis" / "redis.log").read_text()
        assert (SESSION_DIR / "credentials-redis" / "redis.conf").stat().st_mode & 0o777 == 0o600
    finally:
        server.stop()
