"""ConfigMap writes: to a cluster through ``KubernetesHook``, or to manifest files without one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cloudflare_worker_pipeline.connections import optional_connection
from cloudflare_worker_pipeline.execution.base import TaskLog
from cloudflare_worker_pipeline.ownership import ANNOTATION_PREFIX, OWNER_ANNOTATION, check_ownership
from cloudflare_worker_pipeline.settings import PipelineSettings

FIELD_MANAGER = "cloudflare-worker-pipeline"

CONFLICT_RETRIES = 5
API_TIMEOUT = (10, 30)  # connect, read: a stalled API server fails the try instead of hanging it
MAX_CONFIGMAP_BYTES = 1024 * 1024  # the API server refuses larger objects


class ConfigMapTooLargeError(ValueError):
    """The data would not fit in one ConfigMap."""


def config_map(name: str, namespace: str, labels: dict[str, str], data: dict[str, str],
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap manifest; raises ConfigMapTooLargeError past the API server's 1 MiB limit."""
    size = sum(len(key.encode()) + len(value.encode()) for key, value in data.items())
    if size > MAX_CONFIGMAP_BYTES:
        raise ConfigMapTooLargeError(
            f"ConfigMap {namespace}/{name} would hold {size} bytes of data, over the limit of {MAX_CONFIGMAP_BYTES} bytes"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                     **({"annotations": dict(annotations)} if annotations else {})},
        "data": dict(data),
    }


def build_annotations(*, commit: str, git_url: str, dag_id: str, run_id: str, owner: str) -> dict[str, str]:
    """Traceability on both ConfigMaps, leaving their data keys exactly as the spec has them.

    ``owner`` is ``<owner label key>=<value>`` (or empty): who may write this ConfigMap next.
    """
    return {
        f"{ANNOTATION_PREFIX}/commit": commit,
        f"{ANNOTATION_PREFIX}/repository": git_url,
        f"{ANNOTATION_PREFIX}/dag-run": f"{dag_id}/{run_id}",
        OWNER_ANNOTATION: owner,
    }


def write_config_map(manifest: dict[str, Any], settings: PipelineSettings, log: TaskLog,
                     still_current: Callable[[], bool] | None = None) -> str:
    """Create or update the ConfigMap in one write; return where it went, for the log and XCom.

    An existing ConfigMap is written only when this pipeline manages it for the same owner
    (:func:`check_ownership`; :class:`ConfigMapOwnedElsewhereError` otherwise).

    ``still_current``, when given, is asked right before the write; if it answers False (another
    run has replaced what this manifest describes), nothing is written. On a cluster the write is
    conditional on the resourceVersion read before asking, so a concurrent writer cannot slip in
    between: a conflict re-reads and asks again.
    """
    if optional_connection(settings.kubernetes_conn_id) is not None:
        return _apply_to_cluster(manifest, settings.kubernetes_conn_id, log, still_current)
    if still_current is not None and not still_current():
        return _superseded(manifest, log)
    return _write_manifest_file(manifest, settings.manifest_dir, settings.kubernetes_conn_id, log)



def check_config_map_owner(name: str, owner: str, settings: PipelineSettings) -> None:
    """Before a run builds anything: may it write ConfigMap ``name``? (Checked again at the write.)"""
    manifest = {"metadata": {"name": name, "namespace": settings.namespace, "annotations": {OWNER_ANNOTATION: owner}}}
    if optional_connection(settings.kubernetes_conn_id) is not None:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        client = KubernetesHook(conn_id=settings.kubernetes_conn_id).core_v1_client
        check_ownership(_read(client, name, settings.namespace), manifest)
    else:
        check_ownership(_read_manifest_file(settings.manifest_dir, settings.namespace, name), manifest)


def _read_manifest_file(directory: Path, namespace: str, name: str) -> dict[str, Any] | None:
    target = directory / namespace / f"{name}.yaml"
    return yaml.safe_load(target.read_text()) if target.is_file() else None


def _superseded(manifest: dict[str, Any], log: TaskLog) -> str:
    meta = manifest["metadata"]
    log.info("Not writing configmap/%s: another run has since replaced the object it would describe; "
             "that run records its own", meta["name"])
    return f"superseded: configmap/{meta['name']} in namespace {meta['namespace']} left to the newer run"


def _apply_to_cluster(manifest: dict[str, Any], conn_id: str, log: TaskLog,
                      still_current: Callable[[], bool] | None) -> str:
    """Server-side apply: data, labels and annotations land together, created or updated, in one
    request; conditional on the resourceVersion read first when ``still_current`` is given."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    meta = manifest["metadata"]
    client = KubernetesHook(conn_id=conn_id).core_v1_client
    where = f"configmap/{meta['name']} in namespace {meta['namespace']} (connection {conn_id})"
    for _ in range(CONFLICT_RETRIES):
        # Every write is conditional on what was read: its owner checked, its resourceVersion kept.
        existing = _read(client, meta["name"], meta["namespace"])
        check_ownership(existing, manifest)
        if still_current is not None and not still_current():
            return _superseded(manifest, log)
        version = existing["metadata"]["resourceVersion"] if existing else None
        body = {**manifest, "metadata": {**meta, "resourceVersion": version}} if version else manifest
        try:
            if version is None:  # absent: create, so a racing create conflicts
                result = client.create_namespaced_config_map(meta["namespace"], manifest, field_manager=FIELD_MANAGER,
                                                            _request_timeout=API_TIMEOUT)
            else:
                result = client.patch_namespaced_config_map(
                    name=meta["name"], namespace=meta["namespace"], body=body, field_manager=FIELD_MANAGER,
                    force=True, _content_type="application/apply-patch+yaml", _request_timeout=API_TIMEOUT,
                )
        except ApiException as error:
            if error.status == 409:
                log.info("%s changed while writing; reading it again", where)
                continue
            raise
        log.info("Applied %s, resourceVersion %s", where, result.metadata.resource_version)
        return where
    raise RuntimeError(f"{where}: still conflicting after {CONFLICT_RETRIES} tries")


def _read(client: Any, name: str, namespace: str) -> dict[str, Any] | None:
    """The ConfigMap's metadata as the API has it (plain dict), or None when absent."""
    from kubernetes.client.exceptions import ApiException

    try:
        found = client.read_namespaced_config_map(name, namespace, _request_timeout=API_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return {"metadata": {"labels": dict(found.metadata.labels or {}),
                         "annotations": dict(found.metadata.annotations or {}),
                         "resourceVersion": str(found.metadata.resource_version)}}


def _write_manifest_file(manifest: dict[str, Any], directory: Path, conn_id: str, log: TaskLog) -> str:
    """Write the manifest atomically as ``<dir>/<namespace>/<name>.yaml``, ready for ``kubectl apply -f``."""
    meta = manifest["metadata"]
    target = directory / meta["namespace"] / f"{meta['name']}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    check_ownership(_read_manifest_file(directory, meta["namespace"], meta["name"]), manifest)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(manifest, handle, sort_keys=False)
    os.replace(temp, target)
    log.info("No Kubernetes connection %r: wrote the ConfigMap manifest to %s", conn_id, target)
    return str(target)
