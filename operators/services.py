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

A bad entry does not stop the others: its DAG fails Airflow's validation with a message naming
the service and the field, which Airflow lists as an import error of the services DAG file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import DAG

from operators.parameters import InvalidParameterError, PipelineParameters

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


def load_services(path: Path, *, allow_file_git_urls: bool) -> list[Service | ServiceEntryError]:
    """Every entry of the file, each a Service or the error that makes it unusable."""
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("services") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ServiceEntryError(f"{path}: expected a top-level 'services:' list")
    return [_service(index, entry, allow_file_git_urls) for index, entry in enumerate(entries)]


def _service(index: int, entry: Any, allow_file_git_urls: bool) -> Service | ServiceEntryError:
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
        PipelineParameters.from_conf(params, workspace="/", allow_file_git_urls=allow_file_git_urls)
    except InvalidParameterError as error:
        return ServiceEntryError(f"{label} params.{error.parameter}: {error}")
    return Service(name=name, schedule=schedule, params={k: str(v) for k, v in params.items()})


def _is_cron(expression: str) -> bool:
    from croniter import croniter

    return bool(croniter.is_valid(expression))


class InvalidServiceDag(DAG):
    """Stands for a bad services-file entry: Airflow's validation of it fails with the entry's
    error, so the dag-processor records an import error naming the service and the field while
    the file's other DAGs load."""

    service_error: str = ""

    def validate(self) -> None:
        raise ServiceEntryError(self.service_error)


def invalid_service_dag(error: ServiceEntryError, index: int) -> DAG:
    dag = InvalidServiceDag(dag_id=f"invalid_service_entry_{index}", schedule=None)
    dag.service_error = str(error)
    return dag
