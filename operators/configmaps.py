"""ConfigMap writes: to a cluster through ``KubernetesHook``, or to manifest files without one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from operators.execution import TaskLog
from operators.settings import PipelineSettings

FIELD_MANAGER = "cloudflare-worker-pipeline"
MAX_CONFIGMAP_BYTES = 1024 * 1024  # the API server refuses larger objects


class ConfigMapTooLargeError(ValueError):
    """The data would not fit in one ConfigMap."""


def config_map(name: str, namespace: str, labels: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
    """A ConfigMap manifest; raises ConfigMapTooLargeError past the API server's 1 MiB limit."""
    size = sum(len(key.encode()) + len(value.encode()) for key, value in data.items())
    if size > MAX_CONFIGMAP_BYTES:
        raise ConfigMapTooLargeError(
            f"ConfigMap {namespace}/{name} would hold {size} bytes of data, over the limit of {MAX_CONFIGMAP_BYTES} bytes"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": dict(data),
    }


def write_config_map(manifest: dict[str, Any], settings: PipelineSettings, log: TaskLog) -> str:
    """Create or update the ConfigMap in one write; return where it went, for the log and XCom."""
    if _connection_exists(settings.kubernetes_conn_id):
        return _apply_to_cluster(manifest, settings.kubernetes_conn_id, log)
    return _write_manifest_file(manifest, settings.manifest_dir, settings.kubernetes_conn_id, log)


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def _apply_to_cluster(manifest: dict[str, Any], conn_id: str, log: TaskLog) -> str:
    """Server-side apply: data and labels land together, created or updated, in one request."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    meta = manifest["metadata"]
    client = KubernetesHook(conn_id=conn_id).core_v1_client
    result = client.patch_namespaced_config_map(
        name=meta["name"],
        namespace=meta["namespace"],
        body=manifest,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    where = f"configmap/{meta['name']} in namespace {meta['namespace']} (connection {conn_id})"
    log.info("Applied %s, resourceVersion %s", where, result.metadata.resource_version)
    return where


def _write_manifest_file(manifest: dict[str, Any], directory: Path, conn_id: str, log: TaskLog) -> str:
    """Write the manifest atomically as ``<dir>/<namespace>/<name>.yaml``, ready for ``kubectl apply -f``."""
    meta = manifest["metadata"]
    target = directory / meta["namespace"] / f"{meta['name']}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(manifest, handle, sort_keys=False)
    os.replace(temp, target)
    log.info("No Kubernetes connection %r: wrote the ConfigMap manifest to %s", conn_id, target)
    return str(target)
