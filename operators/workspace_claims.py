"""The workspace volume of the ``kubernetes`` mode, like the spec's ``source`` workspace.

Either a claim created for each run (the spec's ``volumeClaimTemplate``; deleted when the run
ends) or an existing claim holding every run under ``<dag_id>/<run>``, mounted with that sub-path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from operators.parameters import PipelineParameters
from operators.settings import PipelineSettings


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
        client.create_namespaced_persistent_volume_claim(settings.namespace, claim_manifest(name, settings, labels))
    except ApiException as error:
        if error.status != 409:
            raise


def delete_run_claim(settings: PipelineSettings, name: str) -> bool:
    """Delete the run's claim; False when it was already gone."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    client = KubernetesHook(conn_id=settings.kubernetes_conn_id).core_v1_client
    try:
        client.delete_namespaced_persistent_volume_claim(name, settings.namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
