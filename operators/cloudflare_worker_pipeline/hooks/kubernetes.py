"""The Kubernetes API as the pipeline uses it: ConfigMaps written conditionally, workspace claims.

Every call carries a timeout, so a stalled API server fails the try instead of hanging it; every
404 and 409 is handled here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from kubernetes.client.exceptions import ApiException

from cloudflare_worker_pipeline.execution.base import TaskLog
from cloudflare_worker_pipeline.ownership import check_ownership

FIELD_MANAGER = "cloudflare-worker-pipeline"
CONFLICT_RETRIES = 5
API_TIMEOUT = (10, 30)  # connect, read


class PipelineKubernetesHook(KubernetesHook):
    """``KubernetesHook`` with the pipeline's ConfigMap and claim operations."""

    def read_config_map_metadata(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The ConfigMap's labels, annotations and resourceVersion (a plain dict), or None when absent."""
        try:
            found = self.core_v1_client.read_namespaced_config_map(name, namespace, _request_timeout=API_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return {"metadata": {"labels": dict(found.metadata.labels or {}),
                             "annotations": dict(found.metadata.annotations or {}),
                             "resourceVersion": str(found.metadata.resource_version)}}

    def apply_config_map(self, manifest: dict[str, Any], log: TaskLog,
                         still_current: Callable[[], bool] | None = None) -> str | None:
        """Create or update the ConfigMap in one request; return where it went, or None when
        ``still_current`` answered False (nothing written).

        Each write is conditional on what was read just before it: the owner checked
        (:func:`check_ownership`), ``still_current`` asked, the resourceVersion kept, so a
        concurrent writer makes it conflict, re-read and ask again.
        """
        meta = manifest["metadata"]
        where = f"configmap/{meta['name']} in namespace {meta['namespace']} (connection {self.conn_id})"
        client = self.core_v1_client
        for _ in range(CONFLICT_RETRIES):
            existing = self.read_config_map_metadata(meta["name"], meta["namespace"])
            check_ownership(existing, manifest)
            if still_current is not None and not still_current():
                return None
            version = existing["metadata"]["resourceVersion"] if existing else None
            try:
                if version is None:  # absent: create, so a racing create conflicts
                    result = client.create_namespaced_config_map(meta["namespace"], manifest,
                                                                field_manager=FIELD_MANAGER, _request_timeout=API_TIMEOUT)
                else:  # server-side apply: data, labels and annotations land together
                    result = client.patch_namespaced_config_map(
                        name=meta["name"], namespace=meta["namespace"],
                        body={**manifest, "metadata": {**meta, "resourceVersion": version}},
                        field_manager=FIELD_MANAGER, force=True, _content_type="application/apply-patch+yaml",
                        _request_timeout=API_TIMEOUT,
                    )
            except ApiException as error:
                if error.status == 409:
                    log.info("%s changed while writing; reading it again", where)
                    continue
                raise
            log.info("Applied %s, resourceVersion %s", where, result.metadata.resource_version)
            return where
        raise RuntimeError(f"{where}: still conflicting after {CONFLICT_RETRIES} tries")

    def create_claim(self, manifest: dict[str, Any]) -> bool:
        """Create a PersistentVolumeClaim; False when it exists already (a retried setup)."""
        try:
            self.core_v1_client.create_namespaced_persistent_volume_claim(
                manifest["metadata"]["namespace"], manifest, _request_timeout=API_TIMEOUT)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_claim(self, name: str, namespace: str) -> bool:
        """Delete a PersistentVolumeClaim; False when it was already gone."""
        try:
            self.core_v1_client.delete_namespaced_persistent_volume_claim(name, namespace, _request_timeout=API_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def claim_access_modes(self, name: str, namespace: str) -> set[str] | None:
        """The claim's access modes, or None when it does not exist."""
        try:
            claim = self.core_v1_client.read_namespaced_persistent_volume_claim(name, namespace,
                                                                                _request_timeout=API_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return set(claim.spec.access_modes or [])
