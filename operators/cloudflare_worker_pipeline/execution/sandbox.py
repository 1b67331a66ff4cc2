"""The local mode's build sandbox: every stage script runs inside bubblewrap.

The repositories built here belong to every team, and their code runs during a build (an npm
``postinstall``, a Wrangler ``[build] command``). On the Airflow worker that code must not reach
the deployment's secrets (process environments, ``airflow.cfg``, the metadata database), other
runs' workspaces or a later build. bubblewrap (Debian's ``bubblewrap``) gives each stage:

- new user, PID, mount, IPC, UTS and network namespaces, the network always its own: a private
  loopback and nothing else. The stages that fetch (checkout, install) reach out only through the
  worker's egress proxy (``execution.egress``), whose Unix socket is bound in; inside it runs as an
  unprivileged user with no capabilities;
- an empty environment for bubblewrap itself (its PID 1 would otherwise keep the worker's), and
  its options (and so the environment's values) passed through a file descriptor, off ``/proc/1/cmdline``;
- ``/usr`` and a handful of ``/etc`` files read-only, a fresh ``/proc``, ``/dev`` and ``/tmp``, and
  the run's workspace as the only writable place (with the run's own ``HOME`` and ``TMPDIR``);
  nothing of ``AIRFLOW_HOME``, the worker's home or other runs;
- ``--die-with-parent`` and the PID namespace: when the stage ends, times out or is killed, every
  process it started ends too, ``setsid`` or not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudflare_worker_pipeline.execution.egress import EgressPolicy
from cloudflare_worker_pipeline.execution.limits import StageCgroup, join_command

SANDBOX_UID = 1000  # the build's user inside the sandbox; mapped to the worker's user outside

# Read-only system files the tools need: name resolution, CA certificates, the dynamic linker's
# cache, Debian's alternatives (awk, ...). No passwd/shadow: the sandbox gets its own passwd.
SYSTEM_READ_ONLY = (
    "/usr", "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/ld.so.conf",
    "/etc/ld.so.conf.d", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
    "/etc/gai.conf", "/etc/localtime",
)
# On merged-/usr systems these are symlinks into /usr; elsewhere they are bound read-only.
TOP_LEVEL_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


# The worker's CA settings, which PASSED_THROUGH_ENV hands to scripts: the files they name are shown
# read-only, so TLS keeps working inside (a CA certificate is no secret).
CA_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO")


def ca_paths(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """Absolute, existing paths the worker's CA variables name, resolved (a bind follows no link)."""
    found = {Path(os.path.realpath(environ[name])) for name in CA_ENV if environ.get(name, "").startswith("/")}
    return tuple(sorted(path for path in found if path.exists()))


class SandboxUnavailableError(RuntimeError):
    """bubblewrap is missing or cannot create namespaces on this worker."""


@dataclass(frozen=True)
class SandboxPolicy:
    """What one stage may see and do.

    :param writable: host directories bound read-write at the same path (the run's workspace).
    :param read_only: further host paths bound read-only at the same path (the clone, for kustomize;
        a ``file://`` repository, for checkout; the ``sandbox_read_only_paths`` setting).
    :param egress: the hosts and ports the stage may reach through the worker's egress proxy
        (checkout: git hosts; install: the registry); None: nowhere. The sandbox's own network is
        always a private loopback.
    :param home: the run's ``HOME`` and ``TMPDIR`` parent, inside a writable directory.
    """

    writable: tuple[Path, ...]
    home: Path
    read_only: tuple[Path, ...] = ()
    egress: EgressPolicy | None = None


def bwrap_options(policy: SandboxPolicy, env: Mapping[str, str], *, tmp_bytes: int | None = None) -> list[str]:
    """bubblewrap's options (given through ``--args``, so the environment's values stay off its
    command line) for running a command under ``policy``, with a ``/tmp`` of ``tmp_bytes`` at most."""
    args = ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--die-with-parent", "--new-session", "--hostname", "build"]
    for path in SYSTEM_READ_ONLY:
        if os.path.lexists(path):
            args += ["--ro-bind", path, path]
    for path in TOP_LEVEL_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev", *(["--size", str(tmp_bytes)] if tmp_bytes else []), "--tmpfs", "/tmp"]
    # Read-only paths inside a writable one are bound after it, so they stay read-only.
    nested = [p for p in policy.read_only if any(_within(p, parent) for parent in policy.writable)]
    for bind in [p for p in policy.read_only if p not in nested]:
        args += ["--ro-bind", str(bind), str(bind)]
    for bind in policy.writable:
        args += ["--bind", str(bind), str(bind)]
    for bind in nested:
        args += ["--ro-bind", str(bind), str(bind)]
    tmp = policy.home / ".tmp"
    full_env = {**env, "HOME": str(policy.home), "TMPDIR": str(tmp), "USER": "build", "LOGNAME": "build"}
    for name, value in full_env.items():
        args += ["--setenv", name, value]
    args += ["--chdir", str(policy.home)]
    return args


def passwd_files() -> dict[str, bytes]:
    """The sandbox's own ``/etc/passwd`` and ``/etc/group``: just the build user (tools look it up)."""
    return {
        "/etc/passwd": f"build:x:{SANDBOX_UID}:{SANDBOX_UID}:build:/nonexistent:/bin/sh\n".encode(),
        "/etc/group": f"build:x:{SANDBOX_UID}:\n".encode(),
    }


def sandboxed_popen(policy: SandboxPolicy, env: Mapping[str, str], command: Sequence[str], *,
                    tmp_bytes: int | None = None, cgroup: StageCgroup | None = None,
                    **popen_kwargs: object) -> subprocess.Popen[str]:
    """Start ``command`` in the sandbox, inside ``cgroup`` when given. bubblewrap starts from an empty
    environment and reads its options and the passwd files from in-memory files, so no value shows
    in the sandbox's /proc."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailableError(unavailable_message("bwrap is not installed"))
    for path in policy.writable:
        path.mkdir(parents=True, exist_ok=True)
    (policy.home / ".tmp").mkdir(parents=True, exist_ok=True)
    for path in (*policy.writable, *policy.read_only):
        # bubblewrap would follow a link in a bind's source: bind only what is what it says.
        if not path.is_absolute() or os.path.realpath(path) != str(path):
            raise SandboxUnavailableError(f"refusing to show {path} in the sandbox: it is, or passes through, a symbolic link")
    fds: list[int] = []
    extra: list[str] = []
    for target, content in passwd_files().items():
        extra += ["--ro-bind-data", str(_data_fd(content, fds)), target]
    options = [*bwrap_options(policy, env, tmp_bytes=tmp_bytes), *extra]
    args_fd = _data_fd(b"".join(option.encode() + b"\0" for option in options), fds)
    try:
        process: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            join_command(cgroup, [bwrap, "--args", str(args_fd), "--", *command]), env={}, pass_fds=tuple(fds),
            **popen_kwargs)
        return process
    finally:
        for fd in fds:
            os.close(fd)


def _data_fd(content: bytes, opened: list[int]) -> int:
    """An anonymous in-memory file holding ``content``, read from its start (any size, unlike a pipe)."""
    fd = os.memfd_create("bwrap-data", os.MFD_CLOEXEC)
    opened.append(fd)
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _within(path: Path, parent: Path) -> bool:
    return path != parent and path.is_relative_to(parent)


def check_sandbox(scratch: Path) -> None:
    """Start an empty sandbox once; raise :class:`SandboxUnavailableError` saying why it cannot run."""
    scratch.mkdir(parents=True, exist_ok=True)
    policy = SandboxPolicy(writable=(scratch,), home=scratch)
    try:
        process = sandboxed_popen(policy, {"PATH": "/usr/bin:/bin"}, ["sh", "-c", "true"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output, _ = process.communicate(timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxUnavailableError(unavailable_message(str(error))) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if process.returncode != 0:
        raise SandboxUnavailableError(unavailable_message(output.strip() or f"exit code {process.returncode}"))


def unavailable_message(reason: str) -> str:
    return (
        f"[cloudflare_worker_pipeline] sandbox: bubblewrap cannot run on this worker ({reason}). The local "
        "execution mode runs each repository's code (install scripts, Wrangler's [build] command) inside "
        "bubblewrap: install Debian's 'bubblewrap' package and allow unprivileged user namespaces (in a "
        "container: seccomp=unconfined, apparmor=unconfined and, for a fresh /proc, systempaths=unconfined in "
        "Docker or unmask=ALL in podman), or run stages in pods (execution_mode = kubernetes). Only if every "
        "repository built here is trusted, set sandbox = none."
    )
