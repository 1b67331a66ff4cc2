"""The test session's real parts, started once on 127.0.0.1: SeaweedFS (S3), a git daemon, the
Kubernetes API emulator, and an Airflow metadata database for ``dag.test()``.

Airflow reads its configuration from the environment at import, so the environment is set here,
at the top, before anything imports Airflow.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.local_stack.pipeline_env import registry_hosts, signing_connection

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SESSION_DIR = Path(tempfile.mkdtemp(prefix="cf-worker-pipeline-tests-"))
R2_ACCESS_KEY = "test-access-key-id"
R2_SECRET_KEY = "test-secret-access-key-0123456789"  # the loopback test server's key
NPM_REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org")

os.environ.update({
    "AIRFLOW_HOME": str(SESSION_DIR / "airflow"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_DIR / 'airflow.db'}",
    "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT": str(SESSION_DIR / "workspaces"),
    "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__MANIFEST_DIR": str(SESSION_DIR / "manifests"),
    "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__DEPENDENCY_CACHE_DIR": str(SESSION_DIR / "dependency-cache"),
    # SeaweedFS and the git daemon listen on 127.0.0.1, which the defaults (R2's hosts; public git hosts) refuse.
    "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__ALLOWED_R2_ENDPOINTS": "127.0.0.1:*",
    # The key that signs each build's provenance (a DSSE envelope); its public key beside it.
    "AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT": signing_connection(SESSION_DIR),
    "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__ALLOWED_GIT_HOSTS": "*,127.0.0.1",
    # The registry through the egress proxy, at the address this machine's network gives it.
    "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__ALLOWED_REGISTRY_HOSTS": registry_hosts(NPM_REGISTRY),
    # This machine's registry mirror strips corepack's signatures; see README "Install environment".
    "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__INSTALL_ENV": json.dumps({
        "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0",
        "COREPACK_INTEGRITY_KEYS": "0",
        "COREPACK_NPM_REGISTRY": NPM_REGISTRY,
        "npm_config_registry": NPM_REGISTRY,
        "YARN_NPM_REGISTRY_SERVER": NPM_REGISTRY,
        "YARN_REGISTRY": NPM_REGISTRY,
    }),
})


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata database, migrated once per session."""
    from airflow.utils.db import resetdb

    resetdb()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    from examples.local_stack.seaweedfs import start_seaweedfs

    server = start_seaweedfs(SESSION_DIR / "seaweedfs", R2_ACCESS_KEY, R2_SECRET_KEY)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_server: object) -> object:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=s3_server.endpoint_url, aws_access_key_id=R2_ACCESS_KEY,  # type: ignore[attr-defined]
        aws_secret_access_key=R2_SECRET_KEY, region_name="auto",
        config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )


@pytest.fixture(scope="session")
def kube_api() -> Iterator[object]:
    from examples.local_stack.kube_api import KubeAPIEmulator

    emulator = KubeAPIEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def git_server() -> Iterator[object]:
    from examples.local_stack.git_daemon import start_git_daemon

    daemon = start_git_daemon(SESSION_DIR / "git")
    yield daemon
    daemon.stop()


_bucket_numbers = itertools.count(1)


@pytest.fixture
def bucket(s3_client: object, request: pytest.FixtureRequest) -> str:
    """A new, empty bucket per test, so tests can assert exactly what was stored."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())
    name = f"t{next(_bucket_numbers)}-{slug}"[:63].strip("-")
    s3_client.create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, s3_server: object, kube_api: object, tmp_path: Path) -> object:
    """Airflow connections for R2 (the SeaweedFS server) and Kubernetes (the emulator)."""
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig.yaml")  # type: ignore[attr-defined]
    monkeypatch.setenv("AIRFLOW_CONN_R2_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": R2_ACCESS_KEY, "password": R2_SECRET_KEY}))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))
    kube_api.clear()  # type: ignore[attr-defined]
    return kube_api


@pytest.fixture
def no_kubernetes_connection(monkeypatch: pytest.MonkeyPatch, s3_server: object, tmp_path: Path) -> Path:
    """Only the R2 connection: ConfigMaps go to a manifest directory (configmap_destination = files)."""
    monkeypatch.setenv("AIRFLOW_CONN_R2_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": R2_ACCESS_KEY, "password": R2_SECRET_KEY}))
    monkeypatch.delenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", raising=False)
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__CONFIGMAP_DESTINATION", "files")
    manifests = tmp_path / "manifests"
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__MANIFEST_DIR", str(manifests))
    return manifests


@pytest.fixture(scope="session")
def pipeline_dag(airflow_db: None) -> object:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("build_and_upload_cloudflare_worker")


@pytest.fixture(scope="session")
def workspaces() -> Path:
    return SESSION_DIR / "workspaces"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == 0:
        shutil.rmtree(SESSION_DIR, ignore_errors=True)


# The layers, by directory: unit (seconds, no DAG run), integration (dag.test() with real tools),
# system (a running Airflow, a browser, an installed wheel). `pytest -m unit` is the fast loop.
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for layer in ("unit", "integration", "system"):
            if layer in item.path.relative_to(REPO / "tests").parts:
                item.add_marker(getattr(pytest.mark, layer))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Expose each phase's report on the test item, so fixtures can tell a failed test (screenshots)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def kubernetes_mode(monkeypatch: pytest.MonkeyPatch, connections: Any, kube_api: Any) -> Any:
    """Stage pods on the emulator; the shared RWX claim 'builds' is the workers' workspace_root too."""
    from kubernetes import client, config

    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_CLAIM", "builds")
    root = kube_api.claims_root / "builds"
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT", str(root))
    api = client.CoreV1Api(config.new_client_from_config(str(connections.write_kubeconfig(root.parent.parent / "kc.yaml"))))
    if ("planton-cloud-pipelines", "builds") not in kube_api.claims:
        api.create_namespaced_persistent_volume_claim("planton-cloud-pipelines", {
            "metadata": {"name": "builds"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}}})
    kube_api.pod_store.deleted_pods.clear()
    return kube_api


