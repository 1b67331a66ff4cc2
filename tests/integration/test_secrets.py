"""R2 keys and Kubernetes credentials never appear in task logs, XCom, rendered template fields,
pod specs, ConfigMaps, stored objects or exception messages: the pipeline runs, succeeding and
failing, in both modes, and everything it produced is scanned for the secret values."""

from __future__ import annotations

import json
import os

import pytest

from examples.local_stack.dag_run import run_pipeline
from examples.local_stack.kube_api import KUBE_TOKEN
from tests.conftest import R2_ACCESS_KEY, R2_SECRET_KEY, REPO
from tests.helpers import conf_for, failure_output, hello_worker_variant, objects_in

WRONG_SECRET = "wrong-r2-secret-7d1f0c2b9e"
# The provenance signing key's body: the base64 line of its PEM (the key never leaves the task process).
SIGNING_KEY = json.loads(os.environ["AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT"])["password"].splitlines()[1]
SECRETS = {"R2 access key id": R2_ACCESS_KEY, "R2 secret access key": R2_SECRET_KEY, "kube token": KUBE_TOKEN,
           "a refused R2 secret": WRONG_SECRET, "provenance signing key": SIGNING_KEY}


def scan(where: str, text: str) -> list[str]:
    return [f"{name} in {where}" for name, value in SECRETS.items() if value in text]


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_no_secret_reaches_anything_the_pipeline_produces(mode, pipeline_dag, git_server, connections, bucket, s3_server,
                                                          s3_client, monkeypatch, tmp_path, capfd) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    if mode == "kubernetes":
        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__EXECUTION_MODE", "kubernetes")
        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT", str(connections.claims_root))
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    connections.pod_store.deleted_pods.clear()
    good = git_server.publish(f"secrets-{mode}", REPO / "examples" / "hello-worker")
    broken = git_server.publish(f"secrets-broken-{mode}",
                                hello_worker_variant(tmp_path, "broken", remove=("wrangler.toml",)))

    runs = [run_pipeline(pipeline_dag, conf_for(good.url, bucket, s3_server.endpoint_url)),
            run_pipeline(pipeline_dag, conf_for(broken.url, bucket, s3_server.endpoint_url, r2_object_key="b/x.js"))]
    monkeypatch.setenv("AIRFLOW_CONN_R2_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": R2_ACCESS_KEY, "password": WRONG_SECRET}))
    runs.append(run_pipeline(pipeline_dag, conf_for(good.url, bucket, s3_server.endpoint_url, r2_object_key="c/x.js")))
    assert runs[2].task_states["upload"] == "failed", "the server refused the signature"
    assert [run.state for run in runs] == ["success", "failed", "failed"]

    found = scan("task logs and exception messages", failure_output(capfd))
    with create_session() as session:
        run_ids = [run.run_id for run in runs]
        for row in session.query(XComModel).filter(XComModel.run_id.in_(run_ids)).all():
            found += scan(f"XCom {row.task_id}/{row.key}", json.dumps(XComModel.deserialize_value(row), default=str))
        for row in session.query(RenderedTaskInstanceFields).filter(RenderedTaskInstanceFields.run_id.in_(run_ids)).all():
            found += scan(f"rendered fields of {row.task_id}", json.dumps(row.rendered_fields, default=str))
    for pod in connections.pod_store.deleted_pods:
        found += scan(f"pod {pod['metadata']['name']}", json.dumps(pod))
    for key, obj in connections.objects().items():
        found += scan(f"configmap {key}", json.dumps(obj))
    for key, body in objects_in(s3_client, bucket).items():
        found += scan(f"object {key}", body.decode(errors="replace"))
    assert found == []
    if mode == "kubernetes":
        assert connections.pod_store.deleted_pods, "pods ran and were scanned"
