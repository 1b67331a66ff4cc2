"""Validation of the run's parameters: the gate before anything is cloned or written."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.parameters import InvalidParameterError, PipelineParameters
from operators.settings import PipelineSettings, SettingsError


def run_workspace(root: Path, dag_id: str, run_id: str) -> Path:
    """A per-run directory: readable, and unique even where two run ids sanitise alike."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)[:80]
    digest = hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:10]
    return root / dag_id / f"{safe}-{digest}"


class ValidateParametersOperator(BaseOperator):
    """Check every parameter and return them, with the run's workspace, for the stages.

    Bad input fails here, once and without retries, naming the parameter; nothing has been
    cloned, uploaded or written yet.
    """

    ui_color = "#fbd38d"

    def execute(self, context: Any) -> dict[str, Any]:
        try:
            settings = PipelineSettings.from_airflow_config()
            workspace = run_workspace(settings.workspace_root, self.dag_id, context["run_id"])
            parameters = PipelineParameters.from_conf(
                dict(context["params"]), workspace=str(workspace), allow_file_git_urls=settings.allow_file_git_urls
            )
        except (InvalidParameterError, SettingsError) as error:
            raise AirflowFailException(str(error)) from None
        self.log.info(
            "Building %s at %s (project root %s) into s3://%s/%s; workspace %s",
            parameters.git_url, parameters.git_revision, parameters.project_root,
            parameters.r2_bucket_name, parameters.r2_object_key, parameters.workspace,
        )
        return parameters.to_dict()
