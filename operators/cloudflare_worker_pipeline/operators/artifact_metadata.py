"""Stage 5: the artifact metadata ConfigMap that downstream deploys read."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.hooks.configmaps import build_annotations, config_map, write_config_map
from cloudflare_worker_pipeline.operators.stage import PipelineOperator
from cloudflare_worker_pipeline.ownership import ConfigMapOwnedElsewhereError


class StoreArtifactMetadataOperator(PipelineOperator):
    """Record where the verified bundle is: ``bucket``, ``path``, ``content-hash``, ``size-bytes``.

    Written only while the stored object is still this run's bundle: two runs building the same
    key end with the ConfigMap describing the object actually stored (see ``write_config_map``).

    :param artifact: the output of the upload stage, which has verified the stored object.
    :param checkout: the output of the checkout stage, for the traceability annotations.
    """

    template_fields: Sequence[str] = (*PipelineOperator.template_fields, "artifact", "checkout")

    def __init__(self, *, artifact: Any, checkout: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.artifact = artifact
        self.checkout = checkout

    def execute(self, context: Any) -> dict[str, str]:
        p = self.pipeline
        manifest = config_map(
            p.worker_script_artifact_config_map_name,
            self.settings.namespace,
            p.labels,
            {
                "bucket": self.artifact["bucket"],
                "path": self.artifact["key"],
                "content-hash": self.artifact["sha256"],
                "size-bytes": str(self.artifact["size_bytes"]),
            },
            build_annotations(commit=self.checkout["commit_sha"], git_url=p.git_url, dag_id=self.dag_id,
                              run_id=context["run_id"], owner=p.owner),
        )
        try:
            return {"config_map": write_config_map(manifest, self.settings, self.log, still_current=self._object_is_ours)}
        except ConfigMapOwnedElsewhereError as error:
            raise AirflowFailException(f"ERROR: {error}") from None

    def _object_is_ours(self) -> bool:
        """Is the stored object still the bundle this run uploaded (same SHA-256 and size)?"""
        from cloudflare_worker_pipeline.hooks.r2 import R2Hook

        p = self.pipeline
        client = R2Hook(endpoint_url=p.r2_endpoint_url, aws_conn_id=self.settings.r2_conn_id).get_conn()
        head = client.head_object(Bucket=self.artifact["bucket"], Key=self.artifact["key"], ChecksumMode="ENABLED")
        ours = base64.b64encode(bytes.fromhex(self.artifact["sha256"])).decode()
        stored = head.get("ChecksumSHA256") or head.get("Metadata", {}).get("content-hash")
        return bool(head.get("ContentLength") == self.artifact["size_bytes"]
                    and stored in (ours, self.artifact["sha256"]))
