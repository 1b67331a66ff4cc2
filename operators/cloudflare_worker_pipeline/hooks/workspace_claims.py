"""The workspace volume of the ``kubernetes`` mode, like the spec's ``source`` workspace.

Either a claim created for each run (the spec's ``volumeClaimTemplate``; deleted when the run
ends) or an existing claim holding every run under ``<dag_id>/<run>``, mounted with that sub-path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cloudflare_worker_pipeline.hooks.configmaps import API_TIMEOUT
from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.settings import PipelineSettings


def claim_for_run(dag_id: str, run_id: str) -> str:
    """A per-run claim's name: derived from the run, so every task (and a pod mutation hook) finds it."""
    return "cfw-workspace-" + hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:20]


def workspace_volume(settings: PipelineSettings, params: PipelineParameters, dag_id: str, run_id: str) -> tuple[str, str | None]:
    """(claim name, sub-path) a stage pod mounts as its workspace."""
    if settings.pods.workspace_claim:
        return settings.pods.workspace_claim, Path(params.workspace).relative_to(settings.workspace_root).as_posix()
    return claim_for_run(dag_id, run_id), None


def claim_manifest(name: str, settings: PipelineSettings, labels: dict[str, str]) -> dict[str, Any]:
    pods = settings.pods
    spec: dict[str, Any] = {
        "accessModes": [pods.workspace_access_mode],
        "resources": {"requests": {"storage": pods.workspace_size}},
    }
    if pods.workspace_storage_class:
        spec["storageClassName"] = pods.workspace_storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": settings.namespace, "labels": labels}, "spec": spec}


def create_run_claim(settings: PipelineSettings, name: str, labels: dict[str, str]) -> None:
    """Create the run's claim; an existing one (a retried setup) is fine."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    client = KubernetesHook(conn_id=settings.kubernetes_conn_id).core_v1_client
    try:
        client.create_namespaced_persistent_volume_claim(settings.namespace, claim_manifest(name, settings, labels),
                                                         _request_timeout=API_TIMEOUT)
    except ApiException as error:
        if error.status != 409:
            raise


def delete_run_claim(settings: PipelineSettings, name: str) -> bool:
    """Delete the run's claim; False when it was already gone."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    client = KubernetesHook(conn_id=settings.kubernetes_conn_id).core_v1_client
    try:
        client.delete_namespaced_persistent_volume_claim(name, settings.namespace, _request_timeout=API_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def existing_claim_problem(settings: PipelineSettings) -> str | None:
    """Why the configured existing claim cannot hold workspaces, or None."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    name = settings.pods.workspace_claim
    client = KubernetesHook(conn_id=settings.kubernetes_conn_id).core_v1_client
    try:
        claim = client.read_namespaced_persistent_volume_claim(name, settings.namespace, _request_timeout=API_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            return f"claim {name!r} not found in namespace {settings.namespace}"
        raise
    modes = set(claim.spec.access_modes or [])
    if "ReadWriteMany" not in modes:
        return (f"claim {name!r} has access modes {sorted(modes)}; stage pods and workers read and write it at "
                "the same time, which needs ReadWriteMany")
    return None


def mount_workspace(pod: Any, *, dag_ids: tuple[str, ...] = ("build_and_upload_cloudflare_worker",)) -> None:
    """``pod_mutation_hook`` helper: mount the workspace claim on KubernetesExecutor worker pods.

    Call it from ``airflow_local_settings.pod_mutation_hook``. For worker pods of ``dag_ids`` it
    mounts the run's claim (per-run claims) or the shared claim at ``workspace_root``, so the
    upload and kustomize_build tasks read what the stage pods wrote. Other pods are left alone.
    """
    from kubernetes.client import models as k8s

    labels = pod.metadata.labels or {}
    annotations = pod.metadata.annotations or {}
    if labels.get("kubernetes_executor") != "True" or annotations.get("dag_id") not in dag_ids:
        return
    settings = PipelineSettings.from_airflow_config()
    if settings.execution_mode != "kubernetes":
        return
    claim = settings.pods.workspace_claim or claim_for_run(annotations["dag_id"], annotations["run_id"])
    mount_path = settings.workspace_root if settings.pods.workspace_claim else settings.workspace_root / claim
    pod.spec.volumes = [*(pod.spec.volumes or []), k8s.V1Volume(
        name="cloudflare-worker-workspace",
        persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim))]
    base = next(c for c in pod.spec.containers if c.name == "base")
    base.volume_mounts = [*(base.volume_mounts or []),
                          k8s.V1VolumeMount(name="cloudflare-worker-workspace", mount_path=str(mount_path))]
