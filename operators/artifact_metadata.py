"""Stage 5: the artifact metadata ConfigMap that downstream deploys read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from operators.configmaps import config_map, write_config_map
from operators.stage import PipelineOperator


class StoreArtifactMetadataOperator(PipelineOperator):
    """Record where the verified bundle is: ``bucket``, ``path``, ``content-hash``, ``size-bytes``.

    :param artifact: the output of the upload stage, which has verified the stored object.
    """

    template_fields: Sequence[str] = (*PipelineOperator.template_fields, "artifact")

    def __init__(self, *, artifact: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.artifact = artifact

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
        )
        return {"config_map": write_config_map(manifest, self.settings, self.log)}
