"""The Role in examples/kubernetes/rbac.yaml grants exactly the verbs the operators use, read off the
requests a kubernetes-mode run makes to the API emulator."""

from __future__ import annotations

import re

import kubernetes_validate
import yaml

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import REPO
from tests.helpers import NAMESPACE, SETTING, conf_for, hello_worker_variant

ROLE_FILE = REPO / "examples" / "kubernetes" / "rbac.yaml"
_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/(?P<resource>[a-z]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?$")
_VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}


def role_rules() -> set[tuple[str, str]]:
    documents = list(yaml.safe_load_all(ROLE_FILE.read_text()))
    for document in documents:
        kubernetes_validate.validate(document, "1.32.0", strict=True)
    role = next(d for d in documents if d["kind"] == "Role")
    return {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


def verbs_used(requests: list[tuple[str, str, str]]) -> set[tuple[str, str]]:
    used = set()
    for method, path, content_type in requests:
        match = _PATH.match(path)
        if not match:
            continue
        resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
        if method == "GET":
            used.add((resource, "get" if match["name"] else "list"))
        else:
            used.add((resource, _VERBS[method]))
        if content_type.startswith("application/apply-patch"):
            used.add((resource, "create"))  # an apply that creates the object is authorised as create too
    return used


def test_the_role_grants_exactly_what_kubernetes_mode_runs_use(pipeline_dag, git_server, connections, kube_api,
                                                                bucket, s3_server, monkeypatch, tmp_path) -> None:
    """One run that succeeds and one whose bundle pod fails."""

    from cloudflare_worker_pipeline.hooks.kubernetes import PipelineKubernetesHook

    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", str(kube_api.claims_root))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    repo = git_server.publish("rbac", REPO / "examples" / "hello-worker")
    for _ in range(2):  # the second run updates (patches) the ConfigMaps the first created
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))
        assert run.state == "success", run.task_states
    broken = hello_worker_variant(tmp_path, "broken", remove=("wrangler.toml",))
    failed = run_pipeline(pipeline_dag, conf_for(git_server.publish("rbac-broken", broken).url, bucket,
                                                 s3_server.endpoint_url))
    assert failed.task_states["bundle"] == "failed"
    # the other workspace kind's run-start check reads its claim
    assert PipelineKubernetesHook(conn_id="kubernetes_default").claim_access_modes("shared", NAMESPACE) is None

    assert verbs_used(kube_api.requests) == role_rules()
