"""The base every stage operator shares: validated parameters in, a script run where configured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.execution import ScriptRunner, StageScriptError, script_runner
from operators.parameters import PipelineParameters
from operators.settings import PipelineSettings


class StageOperator(BaseOperator):
    """A pipeline stage.

    :param parameters: the output of ``validate_parameters`` (an XComArg resolving to
        :meth:`PipelineParameters.to_dict`); stages never read the raw DAG-run conf.
    """

    template_fields: Sequence[str] = ("parameters",)
    ui_color = "#f6821f"  # Cloudflare orange

    def __init__(self, *, parameters: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parameters = parameters
        self._runner: ScriptRunner | None = None

    @cached_property
    def pipeline(self) -> PipelineParameters:
        return PipelineParameters.from_dict(self.parameters)

    @cached_property
    def settings(self) -> PipelineSettings:
        return PipelineSettings.from_airflow_config()

    def results_dir(self) -> Path:
        return Path(self.pipeline.workspace) / "results" / self.task_id

    def run_script(self, script: str, env: Mapping[str, str]) -> dict[str, str]:
        """Run a stage script where the execution mode says; its ``ERROR:`` lines fail the task."""
        self._runner = script_runner(self.settings.execution_mode, self.log)
        try:
            return self._runner.run(
                script, env, results_dir=self.results_dir(), timeout_seconds=self.settings.stage_timeout_seconds
            )
        except StageScriptError as error:
            if error.diagnosed:  # the script named the problem: retrying would only repeat it
                raise AirflowFailException(str(error)) from None
            raise
        finally:
            self._runner = None

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.terminate()
