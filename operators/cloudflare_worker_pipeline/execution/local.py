"""The ``local`` execution mode: a stage script as a process on the worker, in the build sandbox."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cloudflare_worker_pipeline.execution.base import (
    ANSI_ESCAPE,
    ProgressReporter,
    StageScriptError,
    TaskLog,
    log_tool_line,
    read_results,
    stage_program,
)
from cloudflare_worker_pipeline.execution.disk import DiskWatch, file_size_limited
from cloudflare_worker_pipeline.execution.egress import EgressProxy, log_egress, sandbox_env, summarize
from cloudflare_worker_pipeline.execution.limits import (
    MIB,
    CgroupUnavailableError,
    StageCgroup,
    StageLimits,
    join_command,
)
from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy, sandboxed_popen
from cloudflare_worker_pipeline.modes import ExecutionMode
from cloudflare_worker_pipeline.results import EgressEntry

# Inherited from the worker's environment so tools find their proxies and CAs. Nothing else is:
# credentials in the worker's environment (AWS_*, tokens) never reach a script, and HOME and TMPDIR
# are the run's own (a build's `git config --global` or npm cache must not reach a later build).
PASSED_THROUGH_ENV = (
    "PATH", "LANG", "LC_ALL", "TZ",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
)


class LocalScriptRunner:
    """Runs a stage script as a local ``sh`` process, streaming its output to the task log.

    :param workspace: the run's workspace on the worker; results are read beneath it, unfollowed.
    :param policy: what the stage may see and write; its ``home`` is the run's ``HOME``.
    :param sandboxed: run inside bubblewrap under ``policy`` (the ``sandbox`` setting); when false,
        the script runs as the worker's user, seeing what it sees (trusted repositories only).
    :param limits: the stage's processes, memory (a cgroup of its own, where the worker can make
        one), ``/tmp`` size and the workspace's disk (``execution.disk``); None for none.
    """

    mode = ExecutionMode.LOCAL

    @property
    def script_workspace(self) -> str:
        return str(self.workspace_root)

    def __init__(self, log: TaskLog, *, workspace: Path, policy: SandboxPolicy, sandboxed: bool,
                 limits: StageLimits | None = None) -> None:
        self.log = log
        self.workspace_root = workspace
        self.policy = policy
        self.sandboxed = sandboxed
        self.limits = limits
        self._process: subprocess.Popen[str] | None = None
        self.egress: list[EgressEntry] | None = None

    def run(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        full_env = {key: os.environ[key] for key in PASSED_THROUGH_ENV if key in os.environ}
        full_env.update(env)
        full_env["RESULTS_DIR"] = str(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        command = ["sh", "-c", stage_program(script), script]
        if self.limits is not None:
            command = file_size_limited(command, self.limits.workspace_bytes)
        popen_kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True,
            "errors": "replace",
            "start_new_session": True,  # its own process group: a timeout kills bwrap (or npm's children) too
        }
        cgroup = self._cgroup(script)
        try:
            return self._run(script, full_env, command, popen_kwargs, cgroup, results_dir, timeout_seconds)
        finally:
            if cgroup is not None:
                cgroup.remove()

    def _cgroup(self, script: str) -> StageCgroup | None:
        if self.limits is None:
            return None
        try:
            return StageCgroup.create(self.limits)
        except CgroupUnavailableError as error:
            self.log.warning("%s runs without its process and memory limits: %s. They need root or a delegated cgroup "
                             "subtree on the worker (settings stage_max_processes, stage_memory_mb)", script, error)
            return None

    def _run(self, script: str, full_env: dict[str, str], command: list[str], popen_kwargs: dict[str, Any],
             cgroup: StageCgroup | None, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        if self.sandboxed:
            policy, egress = self.policy, self.policy.egress
            self.log.info("Running %s in a bubblewrap sandbox (network: %s)", script,
                          f"only {', '.join(egress.hosts)} through the egress proxy" if egress else "none")
            proxy = EgressProxy(egress) if egress else None
            self.egress = []
            if proxy is not None:
                assert proxy.directory is not None
                policy = replace(policy, writable=(*policy.writable, proxy.directory))
                full_env = {**full_env, **sandbox_env(proxy, policy.home)}
            try:
                return self._follow(script, sandboxed_popen(
                    policy, full_env, command, cgroup=cgroup, tmp_bytes=self.limits.tmp_bytes if self.limits else None,
                    **popen_kwargs), cgroup, results_dir, timeout_seconds)
            finally:
                if proxy is not None:
                    self.egress = summarize(proxy.close())
                    log_egress(self.log, script, self.egress)
        else:
            self.log.warning("Running %s unsandboxed, as the worker's user (setting sandbox = none)", script)
            self.egress = None  # the host's network: nothing records where it went
            home = self.policy.home
            (home / ".tmp").mkdir(parents=True, exist_ok=True)
            process = subprocess.Popen(join_command(cgroup, command),
                                       env={**full_env, "HOME": str(home), "TMPDIR": str(home / ".tmp")}, **popen_kwargs)
            return self._follow(script, process, cgroup, results_dir, timeout_seconds)

    def _follow(self, script: str, process: subprocess.Popen[str], cgroup: StageCgroup | None, results_dir: Path,
                timeout_seconds: int) -> dict[str, str]:
        """Stream the stage's output to the task log until it ends; its results, or why it failed."""
        self._process = process
        tail: deque[str] = deque(maxlen=20)
        errors: list[str] = []
        timer = threading.Timer(timeout_seconds, self._kill, args=(process,))
        timer.start()
        disk = DiskWatch(self.workspace_root, self.limits.workspace_bytes, lambda: self._kill(process)) if self.limits else None
        try:
            assert process.stdout is not None
            with ProgressReporter(self.log, script) as progress, disk or contextlib.nullcontext():
                for raw in process.stdout:
                    progress.output_seen()
                    line = ANSI_ESCAPE.sub("", raw.rstrip("\n"))  # some tools colour even without a terminal
                    log_tool_line(self.log, line)
                    tail.append(line)
                    if line.startswith("ERROR:"):
                        errors.append(line)
                code = process.wait()
        finally:
            timer.cancel()
            self._process = None
        if disk is not None and disk.over is not None:  # the same build would fill it again: no retry
            raise StageScriptError(
                f"ERROR: {script}: the run's workspace grew to {disk.over // MIB} MiB, over its limit of "
                f"{disk.cap_bytes // MIB} MiB (setting workspace_max_mb); the stage was stopped", diagnosed=True)
        reached = cgroup.limit_reached() if cgroup is not None else None
        if code != 0 and reached:  # the same build would reach it again: no retry
            raise StageScriptError(f"ERROR: {script}: {reached}", diagnosed=True)
        if reached:
            self.log.warning("%s: %s, and finished all the same", script, reached)
        if code != 0 and self.limits and self.sandboxed and any("No space left on device" in line for line in tail):
            tail.append(f"(the sandbox's /tmp holds at most {self.limits.tmp_bytes // MIB} MiB: setting "
                        "sandbox_tmp_size_mb; TMPDIR, in the run's workspace, has no such cap)")
        if code != 0 and self.limits and any(("File size limit exceeded" in line or "File too large" in line
                                              or "EFBIG" in line) for line in tail):
            tail.append(f"(no file may grow past {self.limits.workspace_bytes // MIB} MiB: setting workspace_max_mb)")
        if code != 0:
            if code == -signal.SIGKILL and not errors:
                raise StageScriptError(f"{script} timed out after {timeout_seconds} s and was stopped", diagnosed=False)
            if errors:
                raise StageScriptError("\n".join(errors), diagnosed=True)
            raise StageScriptError(f"{script} failed with exit code {code}:\n" + "\n".join(tail), diagnosed=False)
        return read_results(self.workspace_root, results_dir)

    def terminate(self) -> None:
        if self._process is not None:
            self._kill(self._process)

    @staticmethod
    def _kill(process: subprocess.Popen[str]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
