"""Scale-out on a distributed engine: the CeleryExecutor with Redis and PostgreSQL, two Celery
workers under different hostnames, four services built at once, all succeeding, their tasks
spread over both workers. The workers share workspace_root, as the README's "Scaling out" asks.

On the same stack, a hostile repository whose ``postinstall`` holds the broker's password cannot
enqueue a workload: its code runs on a Celery worker, beside Redis, with no network (issue 19)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import FIXTURES, R2_ACCESS_KEY, R2_SECRET_KEY, REPO, SESSION_DIR
from tests.helpers import conf_for, hello_worker_variant, objects_in

DAG_ID = "build_and_upload_cloudflare_worker"
SERVICES = ("alpha", "bravo", "charlie", "delta")


@pytest.fixture(scope="module")
def celery_stack(s3_server, git_server):
    from examples.local_stack.airflow_server import start_airflow
    from examples.local_stack.celery_workers import start_celery_worker
    from examples.local_stack.postgres import start_postgres
    from examples.local_stack.redis_server import start_redis

    postgres = start_postgres(Path(tempfile.mkdtemp(prefix="cfw-celery-pg-")) / "pg")
    redis = start_redis(SESSION_DIR / "redis")
    server = start_airflow(SESSION_DIR / "celery-airflow", postgres.url, REPO / "dags", {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CELERY__BROKER_URL": redis.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW_CONN_R2_DEFAULT": json.dumps({"conn_type": "aws", "login": R2_ACCESS_KEY, "password": R2_SECRET_KEY}),
        "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__CONFIGMAP_DESTINATION": "files",
        "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__MANIFEST_DIR": str(SESSION_DIR / "celery-configmaps"),
        "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT": str(SESSION_DIR / "celery-workspaces"),  # shared
    })
    workers = [start_celery_worker(server, name) for name in ("worker-a", "worker-b")]
    try:
        server.wait_for_dag(DAG_ID)
        yield SimpleNamespace(airflow=server, redis=redis, postgres=postgres)
    finally:
        server.stop()
        redis.stop()
        postgres.stop()
        assert all(worker.poll() is not None for worker in workers)


@pytest.fixture(scope="module")
def celery_airflow(celery_stack):
    return celery_stack.airflow


def test_four_services_at_once_on_two_celery_workers_all_succeed(celery_airflow, git_server, s3_server, s3_client,
                                                                  bucket) -> None:
    api = celery_airflow.api()
    runs = {}
    started = time.monotonic()
    for service in SERVICES:
        repo = git_server.publish(f"celery-{service}", REPO / "examples" / "hello-worker")
        conf = conf_for(repo.url, bucket, s3_server.endpoint_url, r2_object_key=f"{service}/{{commit_sha}}.js",
                        worker_script_artifact_config_map_name=f"{service}-artifact",
                        kustomize_manifests_config_map_name=f"{service}-manifests",
                        owner_identifier_label_value=f"svc-{service}")
        response = api.post(f"{celery_airflow.url}/api/v2/dags/{DAG_ID}/dagRuns",
                            json={"logical_date": None, "conf": conf}, timeout=30)
        assert response.status_code == 200, response.text
        runs[service] = response.json()["dag_run_id"]

    states = {service: celery_airflow.wait_for_run(DAG_ID, run_id, timeout=900)["state"] for service, run_id in runs.items()}
    elapsed = time.monotonic() - started

    assert states == dict.fromkeys(SERVICES, "success"), states
    bundles = [key for key in objects_in(s3_client, bucket) if key.endswith(".js")]
    assert sorted(key.split("/")[0] for key in bundles) == sorted(SERVICES)
    hostnames = set()
    for run_id in runs.values():
        tis = api.get(f"{celery_airflow.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", timeout=10).json()
        hostnames |= {ti["hostname"] for ti in tis["task_instances"] if ti["hostname"]}
    assert hostnames == {"worker-a", "worker-b"}, "the tasks were spread over both workers"
    print(f"4 services on 2 Celery workers: {elapsed:.0f} s trigger to all succeeded")


def test_a_postinstall_with_the_broker_password_cannot_enqueue_a_task(celery_stack, git_server, s3_server, s3_client,
                                                                      bucket, tmp_path) -> None:
    import redis

    stack, marker = celery_stack, uuid.uuid4().hex
    broker = redis.Redis.from_url(stack.redis.url, socket_timeout=10)
    target = {"redis": stack.redis.port, "password": stack.redis.password, "queue": f"cfw-hostile-queue-{marker}",
              "postgres": stack.postgres.port, "api": int(stack.airflow.url.rsplit(":", 1)[1]),
              "key": f"cfw-hostile-{marker}"}
    package = json.loads((REPO / "examples/hello-worker/package.json").read_text())
    package["scripts"]["postinstall"] = "node enqueue.js"
    project = hello_worker_variant(tmp_path, "hostile-celery", files={
        "enqueue.js": (FIXTURES / "hostile" / "enqueue.js").read_text(), "broker.json": json.dumps(target),
        "src/index.ts": (FIXTURES / "hostile" / "index.ts").read_text(), "src/leak.js": 'export const report = "";\n',
        "package.json": json.dumps(package, indent=2)})

    # The control: the same script as a plain process on this host logs in and writes.
    control = subprocess.run(["node", "enqueue.js"], cwd=project, capture_output=True, text=True, timeout=60)
    assert 'redis: answered "+OK\\r\\n:1\\r\\n+OK' in control.stdout, control.stdout + control.stderr
    assert "postgres: connected" in control.stdout and "api-server: connected" in control.stdout, control.stdout
    assert broker.get(target["key"]) == b"enqueued"
    broker.delete(target["key"], target["queue"])
    (project / "src" / "leak.js").write_text('export const report = "";\n')

    repo = git_server.publish("hostile-celery", project)
    api = stack.airflow.api()
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url, r2_object_key="hostile-celery/build.js",
                    worker_script_artifact_config_map_name="hostile-celery-artifact",
                    kustomize_manifests_config_map_name="hostile-celery-manifests",
                    owner_identifier_label_value="svc-hostile")
    response = api.post(f"{stack.airflow.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf},
                        timeout=30)
    assert response.status_code == 200, response.text
    run = stack.airflow.wait_for_run(DAG_ID, response.json()["dag_run_id"], timeout=600)

    assert run["state"] == "success", run
    report = s3_client.get_object(Bucket=bucket, Key="hostile-celery/build.js")["Body"].read().decode()
    assert "redis: error ECONNREFUSED" in report, report  # the sandbox's own loopback: nothing listens
    assert "postgres: error ECONNREFUSED" in report and "api-server: error ECONNREFUSED" in report, report
    assert broker.exists(target["key"], target["queue"]) == 0, "the build wrote to the broker"
