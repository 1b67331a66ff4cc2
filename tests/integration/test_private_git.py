"""Private repositories: HTTPS with a token from an Airflow connection (local mode) or a Kubernetes
secret (pods), the token never in a URL, a log, XCom or a pod spec."""

from __future__ import annotations

import json

import pytest

from examples.local_stack.dag_run import fast_retries, run_pipeline
from tests.conftest import REPO
from tests.helpers import assert_published, conf_for, failure_output, objects_in

TOKEN = "ghp-private-token-5e2a9c71"


@pytest.fixture(scope="module")
def private_git(git_server):
    from examples.local_stack.git_https import PrivateGitServer

    server = PrivateGitServer(root=git_server.base_path, username="ci-bot", token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def trusting_git(monkeypatch, private_git):
    monkeypatch.setenv("GIT_SSL_CAINFO", str(private_git.ca_file))  # the throw-away certificate's CA
    return private_git


def test_a_private_repository_is_cloned_with_the_git_connections_token(pipeline_dag, git_server, trusting_git, connections,
                                                                      bucket, s3_server, s3_client, monkeypatch,
                                                                      capfd) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    git_server.publish("private-hello", REPO / "examples" / "hello-worker")
    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", json.dumps({"conn_type": "generic", "login": "ci-bot", "password": TOKEN}))
    run = run_pipeline(pipeline_dag, conf_for(trusting_git.url("private-hello"), bucket, s3_server.endpoint_url))

    assert_published(run, s3_client, connections, bucket, "my-worker/build.js")
    output = failure_output(capfd)
    assert TOKEN not in output and TOKEN not in json.dumps(run.xcoms)
    with create_session() as session:
        rendered = session.query(RenderedTaskInstanceFields).filter(RenderedTaskInstanceFields.run_id == run.run_id).all()
        assert TOKEN not in json.dumps([row.rendered_fields for row in rendered], default=str)


def test_without_credentials_the_private_repository_is_refused(pipeline_dag, git_server, trusting_git, connections, bucket,
                                                               s3_server, s3_client, monkeypatch, capfd) -> None:
    git_server.publish("private-refused", REPO / "examples" / "hello-worker")
    monkeypatch.delenv("AIRFLOW_CONN_GIT_DEFAULT", raising=False)
    with fast_retries(pipeline_dag, "checkout"):
        run = run_pipeline(pipeline_dag, conf_for(trusting_git.url("private-refused"), bucket, s3_server.endpoint_url))

    assert run.task_states["checkout"] == "failed"
    assert "could not read Username" in failure_output(capfd)  # no prompt: GIT_TERMINAL_PROMPT=0
    assert objects_in(s3_client, bucket) == {}


def test_pods_read_git_credentials_from_a_kubernetes_secret_never_from_the_spec(monkeypatch, connections) -> None:
    from cloudflare_worker_pipeline.operators.checkout import CheckoutOperator
    from cloudflare_worker_pipeline.operators.install import InstallDependenciesOperator

    from tests.helpers import render_pod

    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", json.dumps({"conn_type": "generic", "login": "ci-bot", "password": TOKEN}))
    pod = render_pod(CheckoutOperator, monkeypatch, git_credentials_secret="git-credentials")
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["GIT_PASSWORD"] == {"name": "GIT_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "git-credentials", "key": "password", "optional": True}}}
    assert TOKEN not in json.dumps(pod)
    install = render_pod(InstallDependenciesOperator, monkeypatch, git_credentials_secret="git-credentials")
    assert "GIT_PASSWORD" not in {e["name"] for e in install["spec"]["containers"][0]["env"]}


def test_a_connection_token_without_a_secret_is_refused_in_the_kubernetes_mode(pipeline_dag, git_server, trusting_git,
                                                                              connections, bucket, s3_server,
                                                                              monkeypatch, capfd) -> None:
    git_server.publish("private-k8s", REPO / "examples" / "hello-worker")
    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", json.dumps({"conn_type": "generic", "login": "ci-bot", "password": TOKEN}))
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT", str(connections.claims_root))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    run = run_pipeline(pipeline_dag, conf_for(trusting_git.url("private-k8s"), bucket, s3_server.endpoint_url))

    assert run.task_states["checkout"] == "failed"
    output = failure_output(capfd)
    assert "give them as a Kubernetes secret (setting git_credentials_secret)" in output
    assert TOKEN not in output


def test_a_plain_http_git_server_is_refused_unless_the_setting_allows_it(pipeline_dag, git_server, connections, bucket,
                                                                        s3_server, s3_client, monkeypatch,
                                                                        capfd) -> None:
    from examples.local_stack.git_https import PrivateGitServer

    git_server.publish("internal-http", REPO / "examples" / "hello-worker")
    internal = PrivateGitServer(root=git_server.base_path, username="ci-bot", token=TOKEN, tls=False).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT",
                           json.dumps({"conn_type": "generic", "login": "ci-bot", "password": TOKEN}))
        conf = conf_for(internal.url("internal-http"), bucket, s3_server.endpoint_url)
        refused = run_pipeline(pipeline_dag, conf)
        assert refused.task_states["validate_parameters"] == "failed"
        assert "http:// needs the allow_http_git_urls setting" in failure_output(capfd)

        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__ALLOW_HTTP_GIT_URLS", "true")
        run = run_pipeline(pipeline_dag, conf)
    finally:
        internal.stop()
    assert_published(run, s3_client, connections, bucket, "my-worker/build.js")
