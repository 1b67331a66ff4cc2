"""Scheduled rebuilds: a services file lists services, each becoming its own DAG.

```yaml
services:
  - name: hello-worker               # DAG id: rebuild_hello-worker
    schedule: "0 3 * * *"            # cron or a preset such as "@daily"
    params:                          # the pipeline's parameters, spec names
      git-url: https://github.com/org/hello-worker.git
      git-branch: main               # rebuild the branch head
      r2-object-key: hello-worker/{commit_sha}.js
      ...
```

A bad entry does not stop the others. It is not an import error: Airflow marks every DAG of a file
with an import error stale, and the valid services' DAGs would vanish from the UI and stop being
scheduled. Instead one DAG, ``cloudflare_worker_services_file_errors``, stands for all bad entries:
its description and docs list them, and its one run (``@once``) fails a task per entry with the
error naming the service and the field, where an operator looks for failures.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
import yaml
from airflow.sdk import DAG, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.parameters import InvalidParameterError, PipelineParameters

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SCHEDULE_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}


class ServiceEntryError(ValueError):
    """A services-file entry is malformed; the message names the service and the field."""


@dataclass(frozen=True)
class Service:
    name: str
    schedule: str
    params: dict[str, str]

    @property
    def dag_id(self) -> str:
        return f"rebuild_{self.name}"


def load_services(path: Path, *, git_schemes: Collection[str]) -> list[Service | ServiceEntryError]:
    """Every entry of the file, each a Service or the error that makes it unusable."""
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("services") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ServiceEntryError(f"{path}: expected a top-level 'services:' list")
    return [_service(index, entry, git_schemes) for index, entry in enumerate(entries)]


def _service(index: int, entry: Any, git_schemes: Collection[str]) -> Service | ServiceEntryError:
    if not isinstance(entry, dict):
        return ServiceEntryError(f"services[{index}]: expected a mapping with name, schedule and params")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 200:
        return ServiceEntryError(f"services[{index}] name: expected lowercase letters, digits and '-', got {name!r}")
    label = f"service {name!r}"
    unknown = sorted(set(entry) - {"name", "schedule", "params"})
    if unknown:
        return ServiceEntryError(f"{label}: unknown field {unknown[0]!r} (expected name, schedule, params)")
    schedule = entry.get("schedule")
    if not isinstance(schedule, str) or not (schedule in _SCHEDULE_PRESETS or _is_cron(schedule)):
        return ServiceEntryError(f"{label} schedule: expected a cron expression or a preset like @daily, got {schedule!r}")
    params = entry.get("params")
    if not isinstance(params, dict):
        return ServiceEntryError(f"{label} params: expected a mapping of the pipeline's parameters")
    try:
        PipelineParameters.from_conf(params, workspace="/", git_schemes=git_schemes)
    except InvalidParameterError as error:
        return ServiceEntryError(f"{label} params.{error.parameter}: {error}")
    return Service(name=name, schedule=schedule, params={k: str(v) for k, v in params.items()})


def _is_cron(expression: str) -> bool:
    from croniter import croniter

    return bool(croniter.is_valid(expression))


ERRORS_DAG_ID = "cloudflare_worker_services_file_errors"


class ServiceEntryErrorOperator(BaseOperator):
    """Fails with one bad services-file entry's error, so the UI shows it as a failed task."""

    ui_color = "#fed7d7"

    def __init__(self, *, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def execute(self, context: Any) -> None:
        raise AirflowFailException(self.error)


def services_file_errors_dag(errors: list[ServiceEntryError], path: Path) -> DAG:
    """The DAG reporting the bad entries of ``path``: one failing task each."""
    listed = "\n".join(f"- {error}" for error in errors)
    with DAG(
        dag_id=ERRORS_DAG_ID,
        description=f"{len(errors)} invalid entr{'y' if len(errors) == 1 else 'ies'} in {path}: {errors[0]}",
        doc_md=f"# Invalid entries in the services file\n\n`{path}`; the other services' DAGs load as usual.\n\n{listed}\n",
        schedule="@once",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["cloudflare", "scheduled-rebuild", "invalid-services-file"],
    ) as dag:
        for index, error in enumerate(errors):
            ServiceEntryErrorOperator(task_id=f"entry_{index}", error=str(error), retries=0)
    return dag
