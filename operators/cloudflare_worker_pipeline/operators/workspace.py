"""The per-run workspace's end: removed when the run ends, whatever its outcome."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cloudflare_worker_pipeline.hooks.workspace_claims import claim_for_run, delete_run_claim
from cloudflare_worker_pipeline.operators.stage import PipelineOperator


class RemoveWorkspaceOperator(PipelineOperator):
    """Delete the run's workspace (checkout, node_modules, dist), or its claim. The DAG's teardown."""

    ui_color = "#e2e8f0"

    def execute(self, context: Any) -> None:
        settings = self.settings
        if settings.execution_mode == "kubernetes" and not settings.pods.workspace_claim:
            claim = claim_for_run(self.dag_id, context["run_id"])
            deleted = delete_run_claim(settings, claim)
            self.log.info("%s PersistentVolumeClaim %s/%s", "Deleted" if deleted else "No", settings.namespace, claim)
            return
        workspace = Path(self.pipeline.workspace)
        if workspace.exists():
            shutil.rmtree(workspace)
            self.log.info("Removed workspace %s", workspace)
        else:
            self.log.info("Workspace %s was never created", workspace)
