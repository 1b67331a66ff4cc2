"""Resource limits for one local-mode stage: a cgroup of its own with a process and a memory limit,
and a size on the sandbox's ``/tmp``.

Without them a repository's code ran 800 processes, 2 GiB in one process and 1 GiB in ``/tmp``
(a tmpfs: memory) on the worker, in the worker's own cgroup (issue 19). Each stage now gets a child
cgroup of the task's: cgroup v2 (``pids.max``, ``memory.max``), or on a v1 host its ``pids`` and
``memory`` hierarchies (``pids.max``, ``memory.limit_in_bytes``). Creating one needs root or a
delegated subtree; where the worker has neither, the stage runs without and says so once. The
stage's process joins the cgroup before bubblewrap starts, so everything inside is counted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIB = 1024 * 1024


@dataclass(frozen=True)
class StageLimits:
    """What one stage may use on the worker (settings ``stage_max_processes``, ``stage_memory_mb``,
    ``sandbox_tmp_size_mb``, ``workspace_max_mb``)."""

    max_processes: int
    memory_bytes: int
    tmp_bytes: int
    workspace_bytes: int  # the run's workspace on disk (execution.disk)


class CgroupUnavailableError(OSError):
    """This worker cannot make a cgroup for a stage (no root, no delegation, no controller)."""


@dataclass
class StageCgroup:
    """One stage's cgroup: its directories (one on v2; the pids and memory ones on v1)."""

    limits: StageLimits
    pids_dir: Path
    memory_dir: Path
    v2: bool
    created: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, limits: StageLimits, *, root: Path = CGROUP_ROOT, own: Path = Path("/proc/self/cgroup")) -> StageCgroup:
        """A new child of this process's cgroup with ``limits``; raise :class:`CgroupUnavailableError` saying why not."""
        name = f"cfw-stage-{uuid.uuid4().hex[:12]}"
        paths = _own_cgroups(own)
        try:
            if (root / "cgroup.controllers").exists():  # v2, unified
                parent = root / paths.get("", "/").lstrip("/")
                _enable(parent, ("pids", "memory"))
                group = cls(limits, parent / name, parent / name, v2=True)
                group._make(group.pids_dir)
                _write(group.pids_dir / "pids.max", str(limits.max_processes))
                _write(group.memory_dir / "memory.max", str(limits.memory_bytes))
                _write(group.memory_dir / "memory.swap.max", "0", optional=True)
            else:  # v1: a directory in each of the two hierarchies
                if not (root / "pids" / "pids.max").exists() and not (root / "pids" / "cgroup.procs").exists():
                    raise CgroupUnavailableError(f"no pids controller under {root}")
                group = cls(limits, root / "pids" / paths.get("pids", "/").lstrip("/") / name,
                            root / "memory" / paths.get("memory", "/").lstrip("/") / name, v2=False)
                group._make(group.pids_dir)
                group._make(group.memory_dir)
                _write(group.pids_dir / "pids.max", str(limits.max_processes))
                _write(group.memory_dir / "memory.limit_in_bytes", str(limits.memory_bytes))
                _write(group.memory_dir / "memory.memsw.limit_in_bytes", str(limits.memory_bytes), optional=True)
        except OSError as error:
            if "group" in locals():
                group.remove()
            raise CgroupUnavailableError(f"cannot create a cgroup for the stage ({error})") from None
        return group

    def _make(self, directory: Path) -> None:
        directory.mkdir()
        self.created.append(directory)

    @property
    def procs_files(self) -> list[Path]:
        """Where the stage's first process writes its PID to join (before it starts anything)."""
        return [directory / "cgroup.procs" for directory in dict.fromkeys((self.pids_dir, self.memory_dir))]

    def limit_reached(self) -> str | None:
        """Which limit the stage ran into, said for its error message, or None."""
        if _event_count(self.pids_dir / "pids.events", "max"):
            return (f"the stage reached its limit of {self.limits.max_processes} processes and threads "
                    "(setting stage_max_processes)")
        memory_events = (self.memory_dir / "memory.events") if self.v2 else (self.memory_dir / "memory.oom_control")
        if _event_count(memory_events, "oom_kill"):
            return (f"the stage ran out of its memory limit of {self.limits.memory_bytes // MIB} MiB and was killed "
                    "(setting stage_memory_mb)")
        return None

    def remove(self) -> None:
        """Remove the cgroup (its processes have ended: the PID namespace ended with the stage)."""
        for directory in reversed(self.created):
            for _ in range(50):  # a killed process leaves its cgroup a moment after it is reaped
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    _kill_members(directory)
                    time.sleep(0.1)
        self.created.clear()


def join_command(group: StageCgroup | None, command: list[str]) -> list[str]:
    """``command`` started by a ``sh`` that first moves itself into ``group`` (the paths are
    arguments, never script text), so every process the stage starts is inside from the start."""
    if group is None:
        return command
    procs = [str(path) for path in group.procs_files]
    join = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'
    return ["/bin/sh", "-c", join, "sh", str(len(procs)), *procs, *command]


def _own_cgroups(own: Path) -> dict[str, str]:
    """This process's cgroup per v1 controller (``pids``, ``memory``), and ``""`` for v2."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in own.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    return found


def _enable(parent: Path, controllers: tuple[str, ...]) -> None:
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    missing = [c for c in controllers if c not in enabled]
    if missing:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _write(path: Path, value: str, *, optional: bool = False) -> None:
    try:
        path.write_text(value)
    except OSError:
        if not optional:
            raise


def _event_count(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, count = line.partition(" ")
            if name == key:
                return int(count)
    return 0


def _kill_members(directory: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
