"""docker-compose.yaml, checked without a Docker engine (none runs here): Debian's docker-compose
validates and resolves it, every script its services run is run outside Docker, and every
connection, setting, port and volume the pipeline needs is shown to be provided."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import REPO, SESSION_DIR

COMPOSE = REPO / "docker-compose.yaml"
# The secrets compose refuses to start without (test values; a real stack generates its own).
SECRETS = {"AIRFLOW_JWT_SECRET": "compose-test-jwt-secret-" + "0" * 40,
           "AIRFLOW_FERNET_KEY": "q4Jzl2Wd3WQ1YfM9yCwH9gqGVXc1l0Qn2o3ypJvG0aM=",
           "POSTGRES_PASSWORD": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "REDIS_PASSWORD": "f9e8d7c6b5a40392817f6e5d4c3b2a10",
           "PROVENANCE_SIGNING_CONNECTION": os.environ["AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT"]}
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")
PREFIX = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as Docker Compose resolves it (anchors merged, variables substituted)."""
    done = _compose_config(SECRETS)
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout))


def _compose_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    unset = {key: value for key, value in os.environ.items() if key not in SECRETS}
    return subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", *args], capture_output=True, text=True,
                          env={**unset, **env})


def env_of(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {key: str(value) for key, value in compose["services"][service]["environment"].items()}


def test_docker_compose_validates_the_file() -> None:
    done = _compose_config(SECRETS, "-q")
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    done = _compose_config({key: value for key, value in SECRETS.items() if key != secret}, "-q")
    assert done.returncode != 0
    assert f"set {secret} to" in done.stderr, done.stderr[-1000:]


def test_the_fernet_key_example_makes_a_key_airflow_accepts() -> None:
    from cryptography.fernet import Fernet

    Fernet(SECRETS["AIRFLOW_FERNET_KEY"])  # the test value is a real key
    made = subprocess.run(["sh", "-c", "openssl rand -base64 32 | tr '+/' '-_'"], capture_output=True, text=True)
    assert "openssl rand -base64 32 | tr '+/' '-_'" in COMPOSE.read_text()
    Fernet(made.stdout.strip())


def _published(port: dict[str, Any] | str) -> tuple[str | None, int, int]:
    """(host address, published port, container port) from either of compose's port syntaxes."""
    if isinstance(port, dict):
        return port.get("host_ip"), int(port["published"]), int(port["target"])
    parts = port.split("/")[0].split(":")
    return (parts[0] if len(parts) == 3 else None), int(parts[-2]), int(parts[-1])


def test_published_ports_listen_on_loopback_only_by_default(compose) -> None:
    published = {name: [_published(port) for port in service["ports"]]
                 for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"airflow-apiserver": [("127.0.0.1", 8080, 8080)], "s3": [("127.0.0.1", 8333, 8333)]}


def test_every_image_is_pinned_and_every_lasting_service_has_a_health_check(compose) -> None:
    for name, service in compose["services"].items():
        tag = service["image"].rpartition(":")[2]
        assert re.search(r"\d", tag) and "latest" not in tag, f"{name}: {service['image']} is not pinned"
        if service.get("restart") == "always":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    dockerfile = (REPO / "examples/compose/Dockerfile").read_text()
    for image in re.findall(r"^ARG \w+_IMAGE=(\S+)$", dockerfile, re.M):
        assert re.search(r":v?\d+\.\d+\.\d+", image), f"Dockerfile: {image} is not pinned to a version"


def test_airflow_services_wait_for_their_dependencies(compose) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert needs["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-init"]["depends_on"]["airflow-volumes"]["condition"] == "service_completed_successfully"
    assert services["airflow-worker"]["depends_on"]["s3-init"]["condition"] == "service_completed_successfully"
    assert services["s3-init"]["depends_on"]["s3"]["condition"] == "service_healthy"


def test_every_setting_is_declared_and_every_connection_the_pipeline_uses_is_provided(compose) -> None:
    from cloudflare_worker_pipeline.get_provider_info import DEFAULTS

    for name in AIRFLOW_SERVICES:
        env = env_of(compose, name)
        settings = {key.removeprefix(PREFIX).lower(): value for key, value in env.items() if key.startswith(PREFIX)}
        assert set(settings) <= set(DEFAULTS), f"{name}: unknown settings {set(settings) - set(DEFAULTS)}"
        r2 = json.loads(env[f"AIRFLOW_CONN_{settings.get('r2_conn_id', DEFAULTS['r2_conn_id']).upper()}"])
        assert r2["conn_type"] == "aws" and r2["login"] and r2["password"]
        if settings.get("configmap_destination", DEFAULTS["configmap_destination"]) == "cluster":
            assert f"AIRFLOW_CONN_{settings.get('kubernetes_conn_id', DEFAULTS['kubernetes_conn_id']).upper()}" in env
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        # The database and the broker are reached with their passwords, never without.
        assert f"airflow:{SECRETS['POSTGRES_PASSWORD']}@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert f"airflow:{SECRETS['POSTGRES_PASSWORD']}@postgres/" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"
    # The stand-in S3 server's credentials are the connection's.
    s3_env = env_of(compose, "s3")
    r2 = json.loads(env_of(compose, "airflow-worker")["AIRFLOW_CONN_R2_DEFAULT"])
    assert (s3_env["AWS_ACCESS_KEY_ID"], s3_env["AWS_SECRET_ACCESS_KEY"]) == (r2["login"], r2["password"])


def test_the_settings_parse_as_the_workers_will_read_them(compose) -> None:
    env = {**os.environ, **env_of(compose, "airflow-worker"), "AIRFLOW_HOME": str(SESSION_DIR / "compose-airflow")}
    probe = ("from cloudflare_worker_pipeline.settings import PipelineSettings\n"
             "from cloudflare_worker_pipeline.allowed_hosts import check_r2_endpoint\n"
             "s = PipelineSettings.from_airflow_config()\n"
             "print(s.configmap_destination.value, s.workspace_root, s.manifest_dir, s.pool)\n"
             "check_r2_endpoint('http://172.18.0.5:8333', s.allowed_r2_endpoints)\n")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["files", "/opt/airflow/workspaces", "/opt/airflow/configmaps", "cloudflare-worker-builds"]


def test_ports_and_volumes_line_up(compose) -> None:
    services = compose["services"]
    api = services["airflow-apiserver"]
    published = {_published(port)[1:] for port in api["ports"]}
    execution_api = urlsplit(env_of(compose, "airflow-worker")["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution_api.hostname == "airflow-apiserver" and (8080, execution_api.port) in published
    assert "localhost:8080" in " ".join(api["healthcheck"]["test"])
    s3_port = urlsplit(env_of(compose, "s3-init")["S3_ENDPOINT_URL"]).port
    assert f"-s3.port={s3_port}" in services["s3"]["command"]
    # Every task of a run must see one workspace: the same volume at workspace_root on every Airflow service.
    for name in AIRFLOW_SERVICES:
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in services[name]["volumes"]}
        env = env_of(compose, name)
        assert mounts[env[PREFIX + "WORKSPACE_ROOT"]] == "workspaces", name
        assert mounts[env[PREFIX + "MANIFEST_DIR"]] == "configmaps", name
        assert mounts["/opt/airflow/dags"].endswith("/dags"), name


def test_the_image_copies_only_files_that_exist() -> None:
    dockerfile = (REPO / "examples/compose/Dockerfile").read_text()
    for line in re.findall(r"^COPY --chown=\S+ (.+) \S+$", dockerfile, re.M):
        for source in line.split():
            assert (REPO / source).exists(), source
    commands = {cmd for service in yaml.safe_load(COMPOSE.read_text())["services"].values()
                for cmd in service.get("command", []) if isinstance(service.get("command"), list)}
    for script in ("airflow-init.sh", "create_bucket.py"):
        assert f"/opt/cloudflare-worker-pipeline/compose/{script}" in commands
        assert f"examples/compose/{script}" in dockerfile


def test_the_bucket_init_script_creates_the_bucket_once(compose, s3_server, s3_client) -> None:
    env = {**os.environ, **env_of(compose, "s3-init"), "S3_ENDPOINT_URL": s3_server.endpoint_url,
           "S3_BUCKET": "compose-init-bucket", "AWS_ACCESS_KEY_ID": s3_server.access_key,
           "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    for _ in range(2):  # a restarted stack runs it again
        done = subprocess.run([sys.executable, str(REPO / "examples/compose/create_bucket.py")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    assert "compose-init-bucket" in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}


def test_the_airflow_init_script_migrates_writes_the_password_and_creates_the_pool(compose) -> None:
    from examples.local_stack.postgres import start_postgres

    postgres = start_postgres(Path(tempfile.mkdtemp(prefix="cfw-compose-pg-")) / "pg")
    home = SESSION_DIR / "compose-init"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, **env_of(compose, "airflow-init"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "AIRFLOW_HOME": str(home),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url,
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple-auth" / "passwords.json")}
    try:
        done = subprocess.run(["sh", str(REPO / "examples/compose/airflow-init.sh")], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert "pool cloudflare-worker-builds created" in done.stdout
        assert json.loads((home / "simple-auth" / "passwords.json").read_text()) == {"admin": "airflow"}
        assert (home / "simple-auth" / "passwords.json").stat().st_mode & 0o777 == 0o600
        pools = subprocess.run(["airflow", "pools", "get", "cloudflare-worker-builds", "--output", "json"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert str(json.loads(pools.stdout)[0]["slots"]) == "4"
    finally:
        postgres.stop()


def _named_volume_mounts(service: dict[str, Any]) -> set[str]:
    """Where a service mounts named volumes writable (not bind mounts like ./dags, not :ro)."""
    mounts = set()
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if not source.startswith((".", "/")) and mode != ["ro"]:
            mounts.add(target)
    return mounts


def test_airflow_volumes_gives_every_named_volume_to_the_user_the_services_run_as(compose) -> None:
    services = compose["services"]
    env = env_of(compose, "airflow-volumes")
    assert services["airflow-volumes"]["user"] == "0:0"
    assert set(env["AIRFLOW_VOLUMES"].split()) == set().union(*(_named_volume_mounts(services[name])
                                                                   for name in AIRFLOW_SERVICES))
    for name in (*AIRFLOW_SERVICES, "s3-init"):
        assert services[name]["user"] == f"{env['AIRFLOW_UID']}:0", name


def _write_as(uid: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """Write a file into ``directory`` as ``uid``:0, the way airflow-init writes passwords.json."""
    return subprocess.run(["setpriv", f"--reuid={uid}", "--regid=0", "--clear-groups", "sh", "-c",
                           'echo "{}" > "$1/passwords.json"', "sh", str(directory)], capture_output=True, text=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv, as the service")
def test_the_volumes_step_makes_root_owned_mounts_writable_for_the_airflow_user(compose) -> None:
    env = env_of(compose, "airflow-volumes")
    uid = env["AIRFLOW_UID"]
    assert uid == "50000"
    # What Docker leaves at a named volume's first mount when the image has no such path: root, 0755.
    root = Path(tempfile.mkdtemp(prefix="cfw-compose-volumes-"))
    root.chmod(0o755)
    mounts = [root / target.lstrip("/") for target in env["AIRFLOW_VOLUMES"].split()]
    for mount in mounts:
        mount.mkdir(parents=True)
        for part in (mount, *mount.relative_to(root).parents):
            (root / part).chmod(0o755)
    try:
        # Before: the Airflow user cannot write there (what airflow-init met with passwords.json).
        for mount in mounts:
            refused = _write_as(uid, mount)
            assert refused.returncode != 0 and "Permission denied" in refused.stderr, mount
        done = subprocess.run(["sh", str(REPO / "examples/compose/prepare-volumes.sh")], capture_output=True,
                              text=True, env={**os.environ, "AIRFLOW_UID": uid,
                                              "AIRFLOW_VOLUMES": " ".join(map(str, mounts))})
        assert done.returncode == 0, done.stderr
        for mount in mounts:
            stat = mount.stat()
            assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (int(uid), 0, 0o770), mount
            written = _write_as(uid, mount)
            assert written.returncode == 0, (mount, written.stderr)
        # An unprivileged uid is required, and root to change owners.
        as_root = subprocess.run(["sh", str(REPO / "examples/compose/prepare-volumes.sh")], capture_output=True,
                                 text=True, env={**os.environ, "AIRFLOW_UID": "0", "AIRFLOW_VOLUMES": str(mounts[0])})
        assert as_root.returncode != 0 and "AIRFLOW_UID=0" in as_root.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


# Docker's default masked and read-only paths of a container's /proc (its default systempaths).
DOCKER_MASKED_PROC = (
    "for p in /proc/kcore /proc/keys /proc/timer_list; do [ -e $p ] && mount --bind /dev/null $p; done; "
    "for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do "
    "[ -e $p ] && mount --bind $p $p && mount -o remount,bind,ro $p; done; "
    "for p in /proc/acpi /proc/scsi; do [ -d $p ] && mount -t tmpfs -o ro tmpfs $p; done; ")
SANDBOX_PROBE = ("import sys\nfrom pathlib import Path\n"
                 "from cloudflare_worker_pipeline.execution.sandbox import check_sandbox\n"
                 "check_sandbox(Path(sys.argv[1]))\nprint('SANDBOX-OK')\n")


def _probe_sandbox_in_a_mount_namespace(setup: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'{setup}exec "$0" -c "$1" "$2"', sys.executable, SANDBOX_PROBE, str(scratch)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root to make a mount namespace")
def test_the_worker_unmasks_proc_which_the_build_sandbox_needs_inside_docker(compose, tmp_path) -> None:
    """Inside a container whose /proc Docker masks, bubblewrap cannot mount the sandbox's own /proc:
    every run would fail at setup. The worker service turns the masks off."""
    masked = _probe_sandbox_in_a_mount_namespace(DOCKER_MASKED_PROC, tmp_path / "masked")
    assert masked.returncode != 0 and "Can't mount proc" in masked.stderr, masked.stderr[-2000:]
    assert "systempaths=unconfined" in masked.stderr  # the error says what to set
    unmasked = _probe_sandbox_in_a_mount_namespace("", tmp_path / "unmasked")
    assert "SANDBOX-OK" in unmasked.stdout, unmasked.stderr[-2000:]
    assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= set(
        compose["services"]["airflow-worker"]["security_opt"])
