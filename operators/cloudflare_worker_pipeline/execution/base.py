"""What every execution mode shares: the stage program, the runner interface, the script error.

The stage says what to run; the runner decides where.

Stage scripts (``cloudflare_worker_pipeline/scripts/*.sh``) are POSIX ``sh`` taking input only from environment
variables and writing results as files in ``RESULTS_DIR``, like Tekton results. The ``local`` mode
runs them as child processes of the Airflow task; a Kubernetes mode runs the same bytes in a pod.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from cloudflare_worker_pipeline.modes import ExecutionMode

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class TaskLog(Protocol):
    """The part of a task's logger the runners use (Airflow's is a structlog logger)."""

    def info(self, event: Any, *args: Any, **kw: Any) -> Any: ...

    def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...


class StageScriptError(RuntimeError):
    """A stage script failed; the message is the script's ``ERROR:`` lines, or its exit and last output.

    ``diagnosed`` is true when the script named the problem itself (an ``ERROR:`` line): a missing
    config, a revision that does not exist. Those fail the same way on every try. An undiagnosed
    failure (a git or registry network error, a timeout) may pass on a retry.
    """

    def __init__(self, message: str, *, diagnosed: bool) -> None:
        super().__init__(message)
        self.diagnosed = diagnosed


def stage_program(script: str) -> str:
    """The text both modes run with ``sh -c``: the shared prelude, then the stage's script."""
    scripts = resources.files("cloudflare_worker_pipeline") / "scripts"
    return (scripts / "prelude.sh").read_text() + "\n" + (scripts / script).read_text()


class ScriptRunner(Protocol):
    """Runs stage scripts somewhere: ``execution.local`` (a sandboxed process) or ``execution.kubernetes`` (a pod)."""

    mode: ExecutionMode

    @property
    def script_workspace(self) -> str:
        """Where scripts see the run's workspace (a pod mounts it elsewhere than the worker)."""

    def run(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        """Run ``script`` with ``env`` and return the results it wrote, by file name."""

    def terminate(self) -> None:
        """Stop the running script (the task was killed)."""
