"""The run's workspace: prepared by the run's setup task, removed by its teardown."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.execution.sandbox import SandboxUnavailableError
from cloudflare_worker_pipeline.operators.stage import PipelineOperator
from cloudflare_worker_pipeline.parameters import Worker
from cloudflare_worker_pipeline.settings import SettingsError
from cloudflare_worker_pipeline.workspace import Workspace, run_workspace


class WorkspaceOperator(PipelineOperator):
    ui_color = "#e2e8f0"

    def workspace(self, context: Any) -> Workspace:
        return run_workspace(self.settings, self.dag_id, str(context["run_id"]))


class PrepareWorkspaceOperator(WorkspaceOperator):
    """Create the workspace (a directory, or a claim) and check this deployment can use it: that
    bubblewrap runs (local mode), or that workers see the shared claim (kubernetes mode).

    Returns the run's workers, which the workspace holds side by side and the per-worker stages
    (bundle, typecheck, upload) are mapped over: one for a single-worker service.
    """

    def execute(self, context: Any) -> list[Worker]:
        try:
            self.workspace(context).prepare(self.log, self.pipeline.owner_labels)
        except (SettingsError, SandboxUnavailableError) as error:
            raise AirflowFailException(str(error)) from None
        return self.pipeline.workers


class RemoveWorkspaceOperator(WorkspaceOperator):
    """Delete the run's workspace (checkout, node_modules, dist), or its claim. The DAG's teardown."""

    def execute(self, context: Any) -> None:
        self.workspace(context).remove(self.log)
