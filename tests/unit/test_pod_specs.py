"""The pods the kubernetes mode builds, rendered through the operators' own code path and checked
against the Kubernetes API schemas (kubernetes-validate, offline) for a pinned Kubernetes version."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from cloudflare_worker_pipeline.operators.bundle import BundleWorkerOperator
from cloudflare_worker_pipeline.operators.checkout import CheckoutOperator
from cloudflare_worker_pipeline.operators.install import InstallDependenciesOperator
from cloudflare_worker_pipeline.operators.kustomize import KustomizeBuildOperator
from cloudflare_worker_pipeline.operators.typecheck import TypeCheckOperator
from kubernetes.client import ApiClient

from tests.helpers import render_pod

KUBERNETES_VERSION = "1.32.0"
SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"
STAGES = {
    CheckoutOperator: "alpine/git:v2.47.2",
    InstallDependenciesOperator: "node:20-alpine",
    BundleWorkerOperator: "node:20-alpine",
    TypeCheckOperator: "node:20-alpine",
    KustomizeBuildOperator: "alpine/k8s:1.32.4",
}


@pytest.fixture(autouse=True)
def _kubernetes_connection(connections):
    """Building a pod request asks the hook whether it runs in-cluster: answer from the emulator."""


@pytest.mark.parametrize("operator_class", list(STAGES))
def test_every_stage_pod_is_valid_against_the_kubernetes_schema(operator_class, monkeypatch) -> None:
    pod = render_pod(operator_class, monkeypatch, pod_service_account="worker-builder", image_pull_secrets="registry-a,registry-b",
                     pod_node_selector='{"pool": "builds"}',
                     pod_tolerations='[{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}]')
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    spec = pod["spec"]
    assert spec["containers"][0]["image"] == STAGES[operator_class]
    assert spec["serviceAccountName"] == "worker-builder"
    assert spec["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
    assert spec["nodeSelector"] == {"pool": "builds"}
    assert spec["tolerations"] == [{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["activeDeadlineSeconds"] == 900
    assert pod["metadata"]["namespace"] == "planton-cloud-pipelines"
    assert pod["metadata"]["labels"]["planton.cloud/service-id"] == "svc-1"


@pytest.mark.parametrize("operator_class", list(STAGES))
def test_stage_pods_run_unprivileged_with_resources_and_the_workspace(operator_class, monkeypatch) -> None:
    pod = render_pod(operator_class, monkeypatch, workspace_claim="builds")
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert spec["securityContext"] == {"fsGroup": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "runAsUser": 1000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "4Gi"}}
    workspace = container["volumeMounts"][0]
    assert workspace["name"] == "workspace" and workspace["mountPath"] == "/workspace"
    assert workspace["subPath"].startswith("adhoc_airflow/manual__2026-11-30T00_00_00_00_00-"), "the run's directory"
    assert {"name": "workspace", "persistentVolumeClaim": {"claimName": "builds"}} in spec["volumes"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert all(value.startswith("/workspace") for key, value in env.items() if key.endswith("_DIR"))
    assert env["TERMINATION_LOG"] == "/dev/termination-log"


@pytest.mark.parametrize("operator_class", list(STAGES))
def test_stage_pods_carry_no_credentials(operator_class, monkeypatch) -> None:
    """A Wrangler ``[build] command`` runs even in a dry run: repository code must see no secret."""
    pod = render_pod(operator_class, monkeypatch)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert spec["automountServiceAccountToken"] is False
    assert not container.get("envFrom")
    assert all("valueFrom" not in e for e in container["env"])
    assert not [v for v in spec["volumes"] if "secret" in v or "projected" in v]
    names = {e["name"] for e in container["env"]}
    assert not {n for n in names if n.startswith(("AWS_", "AIRFLOW_CONN", "KUBE"))}
    assert "secret" not in json.dumps(container["env"]).lower()


def test_each_workers_bundle_pod_builds_its_own_project_into_its_own_results(monkeypatch) -> None:
    from cloudflare_worker_pipeline.operators.bundle import BundleWorkerOperator

    second = '[{"project-root": "services/cron", "r2-object-key": "cron.js", "worker-script-artifact-config-map-name": "c"}]'
    pods = [render_pod(BundleWorkerOperator, monkeypatch, additional_workers=second, worker_index=index)
            for index in (0, 1)]
    envs = [{e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]} for pod in pods]
    assert [env["PROJECT_DIR"] for env in envs] == ["/workspace/source", "/workspace/source/services/cron"]
    assert [env["INSTALL_DIR"] for env in envs] == ["/workspace/source"] * 2, "one install serves both"
    assert envs[0]["RESULTS_DIR"] != envs[1]["RESULTS_DIR"], "instances running side by side never share results"
    assert [pod["metadata"]["labels"]["map_index"] for pod in pods] == ["0", "1"]


def test_a_run_claim_is_mounted_whole_without_a_sub_path(monkeypatch) -> None:
    pod = render_pod(InstallDependenciesOperator, monkeypatch)
    claim = next(v for v in pod["spec"]["volumes"] if v["name"] == "workspace")["persistentVolumeClaim"]["claimName"]
    assert claim.startswith("cfw-workspace-")
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "workspace")
    assert mount == {"name": "workspace", "mountPath": "/workspace"}


def executor_pod(dag_id: str = "build_and_upload_cloudflare_worker"):
    from kubernetes.client import models as k8s

    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name="worker", namespace="airflow", labels={"kubernetes_executor": "True"},
                                  annotations={"dag_id": dag_id, "task_id": "upload", "run_id": "manual__1"}),
        spec=k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="apache/airflow:3.3.2")])).spec,
    )


def test_the_pod_mutation_hook_mounts_the_run_claim_on_executor_worker_pods(monkeypatch) -> None:
    from cloudflare_worker_pipeline.settings import PipelineSettings
    from cloudflare_worker_pipeline.workspace import RunClaim, mount_workspace

    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", "/srv/builds")
    pod = executor_pod()
    mount_workspace(pod)
    rendered = ApiClient().sanitize_for_serialization(pod)
    kubernetes_validate.validate(rendered, KUBERNETES_VERSION, strict=True)
    claim = RunClaim(PipelineSettings.from_airflow_config(), "build_and_upload_cloudflare_worker", "manual__1").claim_name
    assert rendered["spec"]["volumes"] == [{"name": "cloudflare-worker-workspace", "persistentVolumeClaim": {"claimName": claim}}]
    assert rendered["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "cloudflare-worker-workspace", "mountPath": f"/srv/builds/{claim}"}]


def test_the_pod_mutation_hook_mounts_the_claim_on_every_scheduled_rebuild_dags_pods(monkeypatch, tmp_path) -> None:
    """Issue 21: only the main DAG's worker pods got the claim; a services file's rebuild DAGs
    upload from the same workspace and need it too. A bad entry's DAG id gets nothing."""
    from cloudflare_worker_pipeline.workspace import mount_workspace

    services = tmp_path / "services.yaml"
    params = {"git-url": "https://github.com/org/hello.git", "r2-bucket-name": "scripts",
              "r2-endpoint-url": "https://acct.r2.cloudflarestorage.com", "r2-object-key": "hello/{commit_sha}.js",
              "worker-script-artifact-config-map-name": "hello-artifact",
              "kustomize-manifests-config-map-name": "hello-manifests"}
    services.write_text(json.dumps({"services": [{"name": "hello", "schedule": "@daily", "params": params},
                                                 {"name": "broken", "schedule": "never", "params": params}]}))
    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", "/srv/builds")
    monkeypatch.setenv(SETTING + "WORKSPACE_CLAIM", "builds")
    monkeypatch.setenv(SETTING + "SERVICES_FILE", str(services))
    rebuild, broken = executor_pod(dag_id="rebuild_hello"), executor_pod(dag_id="rebuild_broken")
    mount_workspace(rebuild)
    mount_workspace(broken)
    assert rebuild.spec.volumes[0].persistent_volume_claim.claim_name == "builds"
    assert rebuild.spec.containers[0].volume_mounts[0].mount_path == "/srv/builds"
    assert broken.spec.volumes is None


def test_the_pod_mutation_hook_mounts_a_shared_claim_at_workspace_root_and_leaves_other_pods_alone(monkeypatch) -> None:
    from cloudflare_worker_pipeline.workspace import mount_workspace

    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernetes")
    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", "/srv/builds")
    monkeypatch.setenv(SETTING + "WORKSPACE_CLAIM", "builds")
    pod = executor_pod()
    mount_workspace(pod)
    assert pod.spec.containers[0].volume_mounts[0].mount_path == "/srv/builds"
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == "builds"
    other = executor_pod(dag_id="some_other_dag")
    mount_workspace(other)
    assert other.spec.volumes is None


EGRESS = {CheckoutOperator: "git", InstallDependenciesOperator: "registry", BundleWorkerOperator: "none",
          KustomizeBuildOperator: "none", TypeCheckOperator: "none"}


def network_policies() -> list[dict]:
    import yaml

    from tests.conftest import REPO

    return list(yaml.safe_load_all((REPO / "examples" / "kubernetes" / "network-policies.yaml").read_text()))


def selects(policy: dict, pod: dict) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return policy["metadata"]["namespace"] == pod["metadata"]["namespace"] and all(
        pod["metadata"]["labels"].get(key) == value for key, value in wanted.items())


@pytest.mark.parametrize("operator_class", list(STAGES))
def test_stage_pods_get_no_service_links_and_say_what_network_they_need(operator_class, monkeypatch) -> None:
    pod = render_pod(operator_class, monkeypatch)
    assert pod["spec"]["enableServiceLinks"] is False
    assert pod["metadata"]["labels"]["cloudflare-worker-pipeline.planton.cloud/egress"] == EGRESS[operator_class]


def test_the_example_network_policies_are_valid() -> None:
    for policy in network_policies():
        kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("operator_class", list(STAGES))
def test_each_stage_pod_is_selected_by_exactly_one_network_policy_and_offline_stages_get_no_egress(
        operator_class, monkeypatch) -> None:
    pod = render_pod(operator_class, monkeypatch)
    chosen = [policy for policy in network_policies() if selects(policy, pod)]
    assert len(chosen) == 1, [p["metadata"]["name"] for p in chosen]
    spec = chosen[0]["spec"]
    assert "Egress" in spec["policyTypes"]
    if EGRESS[operator_class] == "none":
        assert spec["egress"] == []
    else:  # DNS and the egress proxy's listener for this kind of pod, nothing else
        port = {"registry": 3128, "git": 3129}[EGRESS[operator_class]]
        assert [peer for rule in spec["egress"] for peer in rule["to"] if "ipBlock" in peer] == []
        proxy_rules = [rule for rule in spec["egress"] if rule["to"] == [{"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "cloudflare-worker-egress-proxy"}}}]]
        assert [rule["ports"] for rule in proxy_rules] == [[{"protocol": "TCP", "port": port}]]


def egress_proxy_documents() -> list[dict]:
    import yaml

    from tests.conftest import REPO

    return list(yaml.safe_load_all((REPO / "examples" / "kubernetes" / "egress-proxy.yaml").read_text()))


def test_the_egress_proxy_example_is_valid_and_serves_each_kind_of_pod_on_its_own_port() -> None:
    from cloudflare_worker_pipeline.egress_proxy import GIT_PORT, REGISTRY_PORT

    documents = {document["kind"]: document for document in egress_proxy_documents()}
    for document in documents.values():
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "cloudflare_worker_pipeline.egress_proxy"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"registry": REGISTRY_PORT, "git": GIT_PORT}
    assert {p["name"]: p["port"] for p in documents["Service"]["spec"]["ports"]} == {"registry": REGISTRY_PORT,
                                                                                    "git": GIT_PORT}
    ingress = documents["NetworkPolicy"]["spec"]["ingress"]
    assert [(rule["from"][0]["podSelector"]["matchLabels"]["cloudflare-worker-pipeline.planton.cloud/egress"],
             rule["ports"][0]["port"]) for rule in ingress] == [("registry", REGISTRY_PORT), ("git", GIT_PORT)]
    blocks = [peer["ipBlock"] for rule in documents["NetworkPolicy"]["spec"]["egress"] for peer in rule["to"]
              if "ipBlock" in peer]
    assert blocks and all({"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8", "100.64.0.0/10"} <= set(b["except"])
                          for b in blocks)


@pytest.mark.parametrize("operator_class,proxy", [(CheckoutOperator, "http://cloudflare-worker-egress-proxy:3129"),
                                                  (InstallDependenciesOperator, "http://cloudflare-worker-egress-proxy:3128"),
                                                  (BundleWorkerOperator, None), (KustomizeBuildOperator, None)])
def test_fetching_pods_go_out_through_their_proxy_and_the_others_have_none(operator_class, proxy, monkeypatch) -> None:
    pod = render_pod(operator_class, monkeypatch, pod_registry_proxy="http://cloudflare-worker-egress-proxy:3128",
                     pod_git_proxy="http://cloudflare-worker-egress-proxy:3129",
                     install_env='{"npm_config_https_proxy": "http://elsewhere:8080"}')
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    if proxy is None:  # no network: no proxy either
        assert not any("egress-proxy" in (value or "") for value in env.values()), env
        return
    names = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "npm_config_https_proxy", "npm_config_proxy", "YARN_HTTPS_PROXY")
    assert {name: env.get(name) for name in names} == dict.fromkeys(names, proxy), "the proxy wins over install_env"
    assert env["NO_PROXY"] == "" and env["no_proxy"] == ""


@pytest.mark.parametrize("value", ["https://proxy:3128", "http://proxy", "proxy:3128", "http://u:p@proxy:3128",
                                   "http://proxy:3128/path"])
def test_a_pod_proxy_setting_must_be_http_host_and_port(value, monkeypatch) -> None:
    from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError

    monkeypatch.setenv(SETTING + "POD_REGISTRY_PROXY", value)
    with pytest.raises(SettingsError, match=r"pod_registry_proxy: expected an HTTP proxy as http://host:port"):
        PipelineSettings.from_airflow_config()


def test_only_the_install_pod_mounts_the_shared_dependency_cache(monkeypatch) -> None:
    install = render_pod(InstallDependenciesOperator, monkeypatch, dependency_cache_claim="dependency-cache")
    assert {"name": "dependency-cache", "persistentVolumeClaim": {"claimName": "dependency-cache"}} in install["spec"]["volumes"]
    assert {"name": "dependency-cache", "mountPath": "/cache"} in install["spec"]["containers"][0]["volumeMounts"]
    env = {e["name"]: e.get("value") for e in install["spec"]["containers"][0]["env"]}
    assert env["DEPENDENCY_CACHE"].startswith("/cache/")
    kubernetes_validate.validate(install, KUBERNETES_VERSION, strict=True)
    for other in (CheckoutOperator, BundleWorkerOperator, KustomizeBuildOperator):
        pod = render_pod(other, monkeypatch, dependency_cache_claim="dependency-cache")
        assert "dependency-cache" not in {v["name"] for v in pod["spec"]["volumes"]}


def test_a_git_url_git_cannot_fetch_through_the_pods_proxy_fails_checkout_naming_the_setting(monkeypatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException
    from cloudflare_worker_pipeline.parameters import PipelineParameters

    from tests.helpers import VALID

    for key, value in {"EXECUTION_MODE": "kubernetes", "POD_GIT_PROXY": "http://cloudflare-worker-egress-proxy:3129"}.items():
        monkeypatch.setenv(SETTING + key, value)
    params = PipelineParameters.from_conf({**VALID, "git-url": "ssh://git@github.com/org/repo.git"}, workspace="/w")
    operator = CheckoutOperator(task_id="checkout", parameters=params.to_dict())
    with pytest.raises(AirflowFailException, match=r"git-url ssh://git@github.com/org/repo.git cannot go through the "
                                                   r"egress proxy of checkout pods \(setting pod_git_proxy"):
        operator.execute({"run_id": "manual_1"})
