"""The bubblewrap sandbox itself: what a script inside sees, and the error where it cannot run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cloudflare_worker_pipeline.execution.sandbox import (
    SandboxPolicy,
    SandboxUnavailableError,
    check_sandbox,
    sandboxed_popen,
)


def run_inside(policy: SandboxPolicy, script: str, env: dict[str, str] | None = None) -> str:
    process = sandboxed_popen(policy, {"PATH": "/usr/bin:/bin", **(env or {})}, ["sh", "-c", script],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate(timeout=30)
    return output


def test_the_script_sees_only_its_workspace_an_empty_pid_1_and_its_own_home(tmp_path: Path) -> None:
    workspace = tmp_path / "run"
    policy = SandboxPolicy(writable=(workspace,), home=workspace / ".home")
    output = run_inside(policy, 'echo "pid1=[$(tr "\\0" " " < /proc/1/environ)]"; echo "home=$HOME"; '
                                'echo "uid=$(id -u)"; ls /proc | grep -c "^[0-9]"; ls /root /work "$0" 2>&1; '
                                f'touch {workspace}/written && echo wrote; touch /usr/x 2>&1 || echo usr-read-only',
                        {"SECRET_LOOKING": "only-for-the-script"})
    assert "pid1=[]" in output, "bubblewrap's PID 1 must not hold an environment"
    assert f"home={workspace / '.home'}" in output and "uid=1000" in output
    assert "No such file or directory" in output and "wrote" in output and "usr-read-only" in output
    assert (workspace / "written").exists()


def test_a_missing_bubblewrap_is_one_clear_error_naming_the_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    with pytest.raises(SandboxUnavailableError, match=r"sandbox: bubblewrap cannot run on this worker .*sandbox = none"):
        check_sandbox(tmp_path / "probe")


def test_a_bind_source_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(SandboxUnavailableError, match="symbolic link"):
        sandboxed_popen(SandboxPolicy(writable=(tmp_path / "link",), home=tmp_path / "real"), {}, ["true"])
