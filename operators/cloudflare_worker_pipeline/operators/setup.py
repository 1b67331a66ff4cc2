"""The run's setup task: validate, then prepare the workspace, in one task instance.

Each hop between tasks costs a trip through the scheduler loop and a task process that parses
the DAG again (about a second on a running Airflow), so the two steps before the checkout share
one task. They stay two named steps: each has its own section in the task log, and an error
names the step it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.execution.base import TaskLog
    from cloudflare_worker_pipeline.parameters import Worker

# The XCom key of the validated parameters; the return value is the run's workers (a mapped task
# group expands only over a return value).
PARAMETERS_XCOM = "parameters"
SETUP_TASK_ID = "setup"


@contextmanager
def log_section(log: TaskLog, title: str) -> Iterator[None]:
    """A collapsible section of the task log in Airflow's UI."""
    log.info("::group::%s", title)
    try:
        yield
    finally:
        log.info("::endgroup::")


class SetupRunOperator(BaseOperator):
    """Validate the run's parameters and the deployment, then create the run's workspace.

    1. **Validate parameters** (:func:`.validate.validate_run`): bad input fails here, once and
       without retries, naming the parameter, before anything is cloned or written.
    2. **Prepare workspace**: a directory or a claim, checked usable by this deployment (bubblewrap
       runs here; workers see the shared claim). A directory that fails this check is removed again:
       the teardown runs only after a setup that succeeded.

    Returns the run's workers, which ``bundle``, ``typecheck`` and ``upload`` are mapped over; the
    validated parameters are the XCom ``parameters`` (``XComArg(setup, key="parameters")``).
    """

    ui_color = "#fbd38d"

    def execute(self, context: Any) -> list[Worker]:
        from airflow.sdk.exceptions import AirflowFailException

        from cloudflare_worker_pipeline.execution.sandbox import SandboxUnavailableError
        from cloudflare_worker_pipeline.operators.validate import validate_run
        from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError
        from cloudflare_worker_pipeline.workspace import run_workspace

        with log_section(self.log, "Validate parameters"):
            try:
                settings = PipelineSettings.from_airflow_config()
            except SettingsError as error:
                raise AirflowFailException(str(error)) from None
            parameters = validate_run(settings, self.dag_id, context, self.log)
        with log_section(self.log, "Prepare workspace"):
            workspace = run_workspace(settings, self.dag_id, str(context["run_id"]))
            try:
                workspace.prepare(self.log, parameters.owner_labels)
            except (SettingsError, SandboxUnavailableError) as error:
                raise AirflowFailException(str(error)) from None
        context["ti"].xcom_push(key=PARAMETERS_XCOM, value=parameters.to_dict())
        return parameters.workers
