"""What every execution mode shares: the stage program, the runner interface, the script error.

The stage says what to run; the runner decides where.

Stage scripts (``cloudflare_worker_pipeline/scripts/*.sh``) are POSIX ``sh`` taking input only from environment
variables and writing results as files in ``RESULTS_DIR``, like Tekton results. The ``local`` mode
runs them as child processes of the Airflow task; a Kubernetes mode runs the same bytes in a pod.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from cloudflare_worker_pipeline.build_files import list_build_files, read_build_file
from cloudflare_worker_pipeline.modes import ExecutionMode
from cloudflare_worker_pipeline.results import EgressEntry

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# How npm, Yarn, pnpm, Wrangler, git and kubectl start the lines that matter.
_ERROR_LINE = re.compile(r"^\s*(ERROR:|npm (error|ERR!)|error\b|fatal:|✘ \[ERROR\]|ERR_PNPM|\[ERROR\]|YN\d+: .*error)", re.I)
_WARNING_LINE = re.compile(r"^\s*(npm warn|warning\b|warn\b|▲ \[WARNING\]|\[WARN)", re.I)
PROGRESS_SECONDS = 15  # a silent step (npm ci fetching) still says it is alive this often
# A result is a hash, a path, a name, or a report of the bundle's heaviest inputs (25 paths, each
# as long as a monorepo makes it): well past a pod's 4 KiB termination message, far below XCom's limits.
MAX_RESULT_BYTES = 1024 * 1024


def read_results(workspace: Path, results_dir: Path) -> dict[str, str]:
    """The files a stage script wrote in ``results_dir`` (inside ``workspace``), by name. The script
    wrote them, perhaps beside code from the repository: read unfollowed, each size-capped."""
    relative = results_dir.relative_to(workspace)
    return {name: read_build_file(workspace, relative / name, max_bytes=MAX_RESULT_BYTES).decode()
            for name in list_build_files(workspace, relative)}


class TaskLog(Protocol):
    """The part of a task's logger the runners use (Airflow's is a structlog logger)."""

    def info(self, event: Any, *args: Any, **kw: Any) -> Any: ...

    def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...

    def error(self, event: Any, *args: Any, **kw: Any) -> Any: ...


def log_tool_line(log: TaskLog, line: str) -> None:
    """Log one line of a tool's output at the level the tool meant: errors and warnings stand out."""
    if _ERROR_LINE.match(line):
        log.error("%s", line)
    elif _WARNING_LINE.match(line):
        log.warning("%s", line)
    else:
        log.info("%s", line)


class ProgressReporter:
    """Says a step is still running when its tool has been silent for ``PROGRESS_SECONDS``."""

    def __init__(self, log: TaskLog, script: str, every: float = PROGRESS_SECONDS) -> None:
        self.log, self.script, self.every = log, script, every
        self.started = self.last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"progress-{script}", daemon=True)

    def __enter__(self) -> ProgressReporter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def output_seen(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(1):
            now = time.monotonic()
            if now - self.last >= self.every:
                self.log.info("%s still running: %d s so far, no output for %d s", self.script, now - self.started,
                              now - self.last)
                self.last = now


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
    # After run: the connections the stage asked the egress proxy for, grouped ([] when it had no
    # network); None where the runner cannot see them (a pod, an unsandboxed process).
    egress: list[EgressEntry] | None

    @property
    def script_workspace(self) -> str:
        """Where scripts see the run's workspace (a pod mounts it elsewhere than the worker)."""

    def run(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        """Run ``script`` with ``env`` and return the results it wrote, by file name."""

    def terminate(self) -> None:
        """Stop the running script (the task was killed)."""
