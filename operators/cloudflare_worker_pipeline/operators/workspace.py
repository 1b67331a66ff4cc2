"""The run's teardown: remove the workspace the ``setup`` task prepared."""

from __future__ import annotations

from typing import Any

from cloudflare_worker_pipeline.operators.stage import PipelineOperator


class RemoveWorkspaceOperator(PipelineOperator):
    """Delete the run's workspace (checkout, node_modules, dist), or its claim. The DAG's teardown."""

    ui_color = "#e2e8f0"

    def execute(self, context: Any) -> None:
        from cloudflare_worker_pipeline.workspace import run_workspace

        run_workspace(self.settings, self.dag_id, str(context["run_id"])).remove(self.log)
