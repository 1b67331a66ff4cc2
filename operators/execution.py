"""Where a stage's script runs. The stage says what to run; the runner decides where.

Stage scripts (``operators/scripts/*.sh``) are POSIX ``sh`` taking input only from environment
variables and writing results as files in ``RESULTS_DIR``, like Tekton results. The ``local`` mode
runs them as child processes of the Airflow task; a Kubernetes mode runs the same bytes in a pod.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

# Inherited from the worker's environment so tools find their caches, proxies and CAs. Nothing
# else is: credentials in the worker's environment (AWS_*, tokens) never reach a script.
PASSED_THROUGH_ENV = (
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
)


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class TaskLog(Protocol):
    """The part of a task's logger the runners use (Airflow's is a structlog logger)."""

    def info(self, event: Any, *args: Any, **kw: Any) -> Any: ...


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
    scripts = resources.files("operators") / "scripts"
    return (scripts / "prelude.sh").read_text() + "\n" + (scripts / script).read_text()


class ScriptRunner(Protocol):
    @property
    def workspace(self) -> str | None:
        """Where scripts see the run's workspace; None: where the worker sees it."""

    def run(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        """Run ``script`` with ``env`` and return the results it wrote, by file name."""

    def terminate(self) -> None:
        """Stop the running script (the task was killed)."""


class LocalScriptRunner:
    """Runs a stage script as a local ``sh`` process, streaming its output to the task log."""

    @property
    def workspace(self) -> str | None:
        return None

    def __init__(self, log: TaskLog, shell: str = "sh") -> None:
        self.log = log
        self.shell = shell
        self._process: subprocess.Popen[str] | None = None

    def run(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        full_env = {key: os.environ[key] for key in PASSED_THROUGH_ENV if key in os.environ}
        full_env.update(env)
        full_env["RESULTS_DIR"] = str(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)

        self.log.info("Running %s (local process)", script)
        process = subprocess.Popen(
            [self.shell, "-c", stage_program(script), script],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so a timeout kills npm's children too
        )
        self._process = process
        tail: deque[str] = deque(maxlen=20)
        errors: list[str] = []
        timer = threading.Timer(timeout_seconds, self._kill, args=(process,))
        timer.start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = _ANSI_ESCAPE.sub("", raw.rstrip("\n"))  # some tools colour even without a terminal
                self.log.info("%s", line)
                tail.append(line)
                if line.startswith("ERROR:"):
                    errors.append(line)
            code = process.wait()
        finally:
            timer.cancel()
            self._process = None
        if code != 0:
            if code == -signal.SIGKILL and not errors:
                raise StageScriptError(f"{script} timed out after {timeout_seconds} s and was stopped", diagnosed=False)
            if errors:
                raise StageScriptError("\n".join(errors), diagnosed=True)
            raise StageScriptError(f"{script} failed with exit code {code}:\n" + "\n".join(tail), diagnosed=False)
        return {path.name: path.read_text() for path in sorted(results_dir.iterdir()) if path.is_file()}

    def terminate(self) -> None:
        if self._process is not None:
            self._kill(self._process)

    @staticmethod
    def _kill(process: subprocess.Popen[str]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
