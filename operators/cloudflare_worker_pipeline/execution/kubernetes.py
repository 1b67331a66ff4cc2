"""The ``kubernetes`` execution mode: a stage's script runs in a pod through KubernetesPodOperator.

Imported only when a task runs in this mode, so DAG parsing never pays for the provider. The pod
runs the same ``sh -c`` program as the local mode; its results come back in the container's
termination message (written by ``prelude.sh``), so the Airflow worker needs no access to the
workspace volume for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.container import get_container_termination_message
from airflow.sdk.exceptions import AirflowException
from kubernetes.client import models as k8s

from cloudflare_worker_pipeline.execution.base import StageScriptError, TaskLog, stage_program
from cloudflare_worker_pipeline.settings import PodSettings

TERMINATION_LOG = "/dev/termination-log"
POD_LABELS = {"app.kubernetes.io/part-of": "cloudflare-worker-pipeline"}
# Selected by examples/kubernetes/network-policies.yaml: "none" (bundle, kustomize), "git"
# (checkout), "registry" (install).
EGRESS_LABEL = "cloudflare-worker-pipeline.planton.cloud/egress"


class StagePodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator that keeps its base container's termination message."""

    termination_message: str | None = None
    deadline_exceeded: bool = False

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: Any = None, context: Any = None) -> None:
        if remote_pod is not None:
            self.termination_message = get_container_termination_message(remote_pod, self.base_container_name)
            self.deadline_exceeded = getattr(remote_pod.status, "reason", None) == "DeadlineExceeded"
        super().cleanup(pod, remote_pod, xcom_result, context)


def stage_pod(
    *,
    task_id: str,
    stage: str,
    script: str,
    image: str,
    env: Mapping[str, str],
    pods: PodSettings,
    namespace: str,
    labels: Mapping[str, str],
    egress: str,
    claim_name: str,
    sub_path: str | None,
    timeout_seconds: int,
    kubernetes_conn_id: str,
    secret_refs: Mapping[str, tuple[str, str]] | None = None,
) -> StagePodOperator:
    """The pod a stage runs in: non-root, no privilege, no capabilities, no API token, no secrets."""
    uid = pods.run_as_user
    seccomp = k8s.V1SeccompProfile(type="RuntimeDefault")
    workspace = pods.workspace_mount_path
    env_vars = [k8s.V1EnvVar(name=name, value=value) for name, value in env.items()]
    env_vars += [  # credentials by reference only: the pod spec never holds their values
        k8s.V1EnvVar(name=name, value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key, optional=True)))
        for name, (secret, key) in (secret_refs or {}).items()
    ]
    env_vars += [
        k8s.V1EnvVar(name="HOME", value=f"{workspace}/.home"),  # npm, corepack and git caches for this run
        k8s.V1EnvVar(name="TERMINATION_LOG", value=TERMINATION_LOG),
    ]
    return StagePodOperator(
        task_id=task_id,
        name=f"{stage}-{task_id}".replace("_", "-"),
        kubernetes_conn_id=kubernetes_conn_id,
        namespace=namespace,
        image=image,
        image_pull_policy="IfNotPresent",
        cmds=["sh", "-c", stage_program(script), script],
        env_vars=env_vars,
        labels={**POD_LABELS, "app.kubernetes.io/component": stage, EGRESS_LABEL: egress, **labels},
        # No Kubernetes service addresses in the environment: a build has no business finding them.
        full_pod_spec=k8s.V1Pod(spec=k8s.V1PodSpec(containers=[], enable_service_links=False)),
        container_resources=k8s.V1ResourceRequirements(**pods.resources),
        service_account_name=pods.service_account or None,
        automount_service_account_token=False,
        image_pull_secrets=[k8s.V1LocalObjectReference(name=name) for name in pods.image_pull_secrets] or None,
        node_selector=dict(pods.node_selector) or None,
        tolerations=[_toleration(t) for t in pods.tolerations] or None,
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=uid, run_as_group=uid, fs_group=uid, seccomp_profile=seccomp
        ),
        container_security_context=k8s.V1SecurityContext(
            run_as_non_root=True, run_as_user=uid, run_as_group=uid, allow_privilege_escalation=False,
            privileged=False, read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]), seccomp_profile=seccomp,
        ),
        volumes=[
            k8s.V1Volume(name="workspace",
                         persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim_name)),
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource()),
        ],
        volume_mounts=[
            k8s.V1VolumeMount(name="workspace", mount_path=workspace, sub_path=sub_path),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),  # an emptyDir: the root filesystem is read-only
        ],
        startup_timeout_seconds=pods.startup_timeout_seconds,
        active_deadline_seconds=timeout_seconds,
        on_finish_action="delete_succeeded_pod" if pods.keep_failed_pods else "delete_pod",
        deferrable=pods.deferrable,
        get_logs=True,
        do_xcom_push=False,
        termination_message_policy="File",
        log_pod_spec_on_failure=False,
        log_events_on_failure=True,
        reattach_on_restart=True,
    )


def _toleration(spec: Mapping[str, Any]) -> k8s.V1Toleration:
    return k8s.V1Toleration(
        key=spec.get("key"), operator=spec.get("operator"), value=spec.get("value"),
        effect=spec.get("effect"), toleration_seconds=spec.get("tolerationSeconds"),
    )


class KubernetesScriptRunner:
    """Runs stage scripts in pods. ``build_pod`` is given the script, its env and its timeout."""

    def __init__(self, log: TaskLog, context: Any, pod_factory: Any, workspace: str) -> None:
        self.log = log
        self.context = context
        self.pod_factory = pod_factory
        self._workspace = workspace
        self._pod: StagePodOperator | None = None

    @property
    def workspace(self) -> str | None:
        return self._workspace

    def run(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        self._pod = self.pod_factory(script, {**env, "RESULTS_DIR": str(results_dir)}, timeout_seconds)
        self.log.info("Running %s in a pod (image %s)", script, self._pod.image)
        return self._finish(script, timeout_seconds, lambda: self._pod.execute(self.context))

    def resume(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int,
               event: dict[str, Any]) -> dict[str, str]:
        """Continue after the deferrable pod's trigger fired (the pod ran meanwhile)."""
        self._pod = self.pod_factory(script, {**env, "RESULTS_DIR": str(results_dir)}, timeout_seconds)
        return self._finish(script, timeout_seconds, lambda: self._pod.trigger_reentry(self.context, event))

    def _finish(self, script: str, timeout_seconds: int, wait: Any) -> dict[str, str]:
        pod = self._pod
        assert pod is not None
        try:
            wait()
        except AirflowException as error:
            message = pod.termination_message or ""
            errors = [line for line in message.splitlines() if line.startswith("ERROR:")]
            if errors:
                raise StageScriptError("\n".join(errors), diagnosed=True) from None
            if pod.deadline_exceeded:
                raise StageScriptError(f"{script} timed out after {timeout_seconds} s and was stopped",
                                       diagnosed=False) from None
            raise StageScriptError(f"{script} failed in its pod: {error}", diagnosed=False) from None
        try:
            results = json.loads(pod.termination_message or "")
        except json.JSONDecodeError:
            raise StageScriptError(f"{script} succeeded but its pod reported no results "
                                   f"(termination message: {pod.termination_message!r})", diagnosed=False) from None
        return {str(key): str(value) for key, value in results.items()}

    def terminate(self) -> None:
        if self._pod is not None:
            self._pod.on_kill()
