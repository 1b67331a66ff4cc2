"""The per-run workspace's end: removed when the run ends, whatever its outcome."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from operators.stage import PipelineOperator


class RemoveWorkspaceOperator(PipelineOperator):
    """Delete the run's workspace (checkout, node_modules, dist). Used as the DAG's teardown."""

    ui_color = "#e2e8f0"

    def execute(self, context: Any) -> None:
        workspace = Path(self.pipeline.workspace)
        if workspace.exists():
            shutil.rmtree(workspace)
            self.log.info("Removed workspace %s", workspace)
        else:
            self.log.info("Workspace %s was never created", workspace)
