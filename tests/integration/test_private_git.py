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


def test_pods_read_an_ssh_deploy_key_from_the_secret_and_host_keys_from_the_setting(monkeypatch, connections,
                                                                                   tmp_path) -> None:
    from cloudflare_worker_pipeline.operators.checkout import CheckoutOperator

    from tests.helpers import render_pod

    known = tmp_path / "known_hosts"
    known.write_text("git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    pod = render_pod(CheckoutOperator, monkeypatch, git_url="git@git.example.com:org/repo.git",
                     git_credentials_secret="git-deploy-key", git_known_hosts=str(known))
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["GIT_SSH_KEY"] == {"name": "GIT_SSH_KEY", "valueFrom": {"secretKeyRef": {
        "name": "git-deploy-key", "key": "ssh-privatekey", "optional": True}}}
    assert env["GIT_SSH_KNOWN_HOSTS"]["value"] == known.read_text().strip()
    assert "GIT_PASSWORD" not in env


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
        assert refused.task_states["setup"] == "failed"
        assert "http:// needs the allow_http_git_urls setting" in failure_output(capfd)

        monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__ALLOW_HTTP_GIT_URLS", "true")
        run = run_pipeline(pipeline_dag, conf)
    finally:
        internal.stop()
    assert_published(run, s3_client, connections, bucket, "my-worker/build.js")


@pytest.fixture(scope="module")
def ssh_git(git_server):
    from examples.local_stack.ssh_git import start_ssh_git

    server = start_ssh_git(git_server.base_path, git_server.base_path.parent / "sshd")
    yield server
    server.stop()


def ssh_connection(ssh_git, **extra: str) -> str:
    return json.dumps({"conn_type": "ssh", "extra": {"private_key": ssh_git.deploy_key,
                                                     "known_hosts": ssh_git.known_hosts, **extra}})


def test_an_ssh_url_clones_with_the_deploy_key_and_no_later_stage_sees_it(pipeline_dag, git_server, ssh_git, connections,
                                                                         bucket, s3_server, s3_client, monkeypatch,
                                                                         tmp_path, capfd) -> None:
    """Issue 21: SSH URLs passed validation, then failed at checkout. The deploy key from the git
    connection clones over a real sshd; install's postinstall (repository code) looks for it in its
    environment, HOME, TMPDIR, /tmp and the workspace, and ships what it finds in the bundle."""
    from tests.helpers import hello_worker_variant

    look = ('const fs = require("fs"), path = require("path"); const found = [];'
            'const needle = ["-----BEGIN", "OPENSSH", "PRIVATE", "KEY-----"].join(" ");'
            'const walk = (d, n) => { if (n > 6) return; let es = []; try { es = fs.readdirSync(d, { withFileTypes: true }); }'
            ' catch { return; } for (const e of es) { const p = path.join(d, e.name);'
            ' if (e.isDirectory() && e.name !== "node_modules") walk(p, n + 1);'
            ' else if (e.isFile()) { try { if (fs.readFileSync(p, "utf8").includes(needle)) found.push(p); } catch {} } } };'
            'for (const d of [process.env.HOME, process.env.TMPDIR, "/tmp", path.resolve("..")]) if (d) walk(d, 0);'
            'if (JSON.stringify(process.env).includes(needle)) found.push("env");'
            'fs.writeFileSync("src/found.ts", "export const found = " + JSON.stringify(found.join(",") || "nothing") + ";\\n");')
    package = json.loads((REPO / "examples" / "hello-worker" / "package.json").read_text())
    package["scripts"]["postinstall"] = "node look.js"
    project = hello_worker_variant(tmp_path, "ssh-hello", files={
        "look.js": look, "package.json": json.dumps(package, indent=2),
        "src/index.ts": 'import { found } from "./found";\nexport default { fetch: () => new Response("key: " + found) };\n',
        "src/found.ts": 'export const found = "not looked";\n'})
    git_server.publish("ssh-hello", project)
    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", ssh_connection(ssh_git))

    run = run_pipeline(pipeline_dag, conf_for(ssh_git.url("ssh-hello"), bucket, s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    bundle = objects_in(s3_client, bucket)["my-worker/build.js"].decode()
    assert '"nothing"' in bundle, "the postinstall found the deploy key: " + bundle[-400:]
    output = failure_output(capfd)
    assert "PRIVATE KEY" not in output and "PRIVATE KEY" not in json.dumps(run.xcoms)


def test_an_ssh_server_whose_host_key_is_unknown_is_refused(pipeline_dag, git_server, ssh_git, connections, bucket,
                                                            s3_server, s3_client, monkeypatch, capfd) -> None:
    git_server.publish("ssh-unknown-host", REPO / "examples" / "hello-worker")
    other_host = ssh_git.known_hosts.split(" ", 1)[0] + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", ssh_connection(ssh_git, known_hosts=other_host))
    with fast_retries(pipeline_dag, "checkout"):
        run = run_pipeline(pipeline_dag, conf_for(ssh_git.url("ssh-unknown-host"), bucket, s3_server.endpoint_url))

    assert run.task_states["checkout"] == "failed"
    assert "Host key verification failed" in failure_output(capfd)  # never StrictHostKeyChecking=no
    assert objects_in(s3_client, bucket) == {}


def test_an_ssh_url_without_a_known_host_key_or_a_deploy_key_is_refused_at_validation(
        pipeline_dag, git_server, ssh_git, connections, bucket, s3_server, s3_client, monkeypatch, capfd) -> None:
    git_server.publish("ssh-refused", REPO / "examples" / "hello-worker")
    url = ssh_git.url("ssh-refused")
    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", ssh_connection(ssh_git, known_hosts=""))
    no_host = run_pipeline(pipeline_dag, conf_for(url, bucket, s3_server.endpoint_url))
    assert no_host.task_states["setup"] == "failed"
    assert "host keys are always checked" in failure_output(capfd)
    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", json.dumps({"conn_type": "ssh", "extra": {
        "known_hosts": ssh_git.known_hosts}}))
    no_key = run_pipeline(pipeline_dag, conf_for(url, bucket, s3_server.endpoint_url))
    assert no_key.task_states["setup"] == "failed"
    assert "a deploy key in the connection git_default (extra private_key)" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}
