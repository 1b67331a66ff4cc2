"""The two ConfigMaps: their manifests, and where the publish step writes them.

``configmap_destination`` decides where, here and nowhere else: ``cluster`` through the Kubernetes
API (:class:`PipelineKubernetesHook`), ``files`` as manifests for ``kubectl apply -f``. A missing
connection with ``cluster`` is an error, never a quiet fall-back to files on some worker.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from cloudflare_worker_pipeline.connections import optional_connection
from cloudflare_worker_pipeline.execution.base import TaskLog
from cloudflare_worker_pipeline.get_provider_info import SECTION
from cloudflare_worker_pipeline.modes import ConfigMapDestination
from cloudflare_worker_pipeline.ownership import ANNOTATION_PREFIX, OWNER_ANNOTATION, check_ownership
from cloudflare_worker_pipeline.results import UploadResult
from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError

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


def artifact_annotations(artifact: UploadResult) -> dict[str, str]:
    """What the artifact ConfigMap adds to the spec's four keys, as annotations existing readers
    ignore: the bundle's compressed sizes, its source map, the modules stored beside it, its
    provenance statement, its signed envelope and its egress log.

    Every one is always written, empty when it does not apply: a ConfigMap first created with a
    value must not keep it once a build has none (an applier cannot remove what a create set).
    """
    files = artifact.get("files") or []
    maps = [f["key"] for f in files if f["kind"] == "source-map"]
    modules = [{"key": f["key"], "sha256": f["sha256"], "size-bytes": f["size_bytes"]} for f in files
               if f["kind"] == "module"]
    gzip_bytes, brotli_bytes = artifact.get("gzip_bytes"), artifact.get("brotli_bytes")
    provenance, log, signature = artifact.get("provenance"), artifact.get("egress_log"), artifact.get("signature")
    return {
        f"{ANNOTATION_PREFIX}/gzip-bytes": "" if gzip_bytes is None else str(gzip_bytes),
        f"{ANNOTATION_PREFIX}/brotli-bytes": "" if brotli_bytes is None else str(brotli_bytes),
        f"{ANNOTATION_PREFIX}/source-map": maps[0] if maps else "",
        f"{ANNOTATION_PREFIX}/modules": json.dumps(modules, separators=(",", ":")) if modules else "",
        f"{ANNOTATION_PREFIX}/provenance": provenance["key"] if provenance else "",
        f"{ANNOTATION_PREFIX}/provenance-sha256": provenance["sha256"] if provenance else "",
        f"{ANNOTATION_PREFIX}/egress-log": log["key"] if log else "",
        f"{ANNOTATION_PREFIX}/egress-log-sha256": log["sha256"] if log else "",
        f"{ANNOTATION_PREFIX}/provenance-signature": signature["key"] if signature else "",
    }


class ConfigMapStore(Protocol):
    """Where ConfigMaps are read from and written to."""

    def metadata(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The existing ConfigMap's metadata (labels, annotations), or None."""

    def write(self, manifest: dict[str, Any], log: TaskLog, still_current: Callable[[], bool] | None = None) -> str | None:
        """Write ``manifest`` if its owner may; None when ``still_current`` said no. Returns where it went."""


class ClusterConfigMaps:
    """ConfigMaps in the cluster, written conditionally on their resourceVersion."""

    def __init__(self, conn_id: str) -> None:
        from cloudflare_worker_pipeline.hooks.kubernetes import PipelineKubernetesHook

        self.hook = PipelineKubernetesHook(conn_id=conn_id)

    def metadata(self, name: str, namespace: str) -> dict[str, Any] | None:
        return self.hook.read_config_map_metadata(name, namespace)

    def write(self, manifest: dict[str, Any], log: TaskLog, still_current: Callable[[], bool] | None = None) -> str | None:
        return self.hook.apply_config_map(manifest, log, still_current)


class ManifestFiles:
    """ConfigMaps as ``<directory>/<namespace>/<name>.yaml``, each replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str, namespace: str) -> Path:
        return self.directory / namespace / f"{name}.yaml"

    def metadata(self, name: str, namespace: str) -> dict[str, Any] | None:
        target = self._path(name, namespace)
        return yaml.safe_load(target.read_text()) if target.is_file() else None

    def write(self, manifest: dict[str, Any], log: TaskLog, still_current: Callable[[], bool] | None = None) -> str | None:
        meta = manifest["metadata"]
        check_ownership(self.metadata(meta["name"], meta["namespace"]), manifest)
        if still_current is not None and not still_current():
            return None
        target = self._path(meta["name"], meta["namespace"])
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(manifest, handle, sort_keys=False)
        os.replace(temp, target)
        log.info("Wrote the ConfigMap manifest %s (configmap_destination = files)", target)
        return str(target)


def config_map_store(settings: PipelineSettings) -> ConfigMapStore:
    """The store ``configmap_destination`` names; SettingsError when ``cluster`` has no connection."""
    if settings.configmap_destination is ConfigMapDestination.FILES:
        return ManifestFiles(settings.manifest_dir)
    if optional_connection(settings.kubernetes_conn_id) is None:
        raise SettingsError(
            f"[{SECTION}] configmap_destination is cluster, but Airflow has no connection "
            f"{settings.kubernetes_conn_id!r} (setting kubernetes_conn_id): create it (type kubernetes), "
            "or set configmap_destination = files to write manifest files instead"
        )
    return ClusterConfigMaps(settings.kubernetes_conn_id)
