"""A stage's cgroup, on a cgroup v2 and a v1 layout (fake trees here; the real one in
tests/integration/test_stage_limits.py), and the command that joins it before bubblewrap starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cloudflare_worker_pipeline.execution.limits import (
    MIB,
    CgroupUnavailableError,
    StageCgroup,
    StageLimits,
    join_command,
)

LIMITS = StageLimits(max_processes=300, memory_bytes=512 * MIB, tmp_bytes=64 * MIB, workspace_bytes=256 * MIB)


def _own(tmp_path: Path, text: str) -> Path:
    own = tmp_path / "self-cgroup"
    own.write_text(text)
    return own


def test_v2_makes_a_child_of_the_own_cgroup_enables_its_controllers_and_sets_both_limits(tmp_path) -> None:
    root = tmp_path / "cgroup"
    parent = root / "system.slice" / "airflow-worker.service"
    parent.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (parent / "cgroup.subtree_control").write_text("cpu\n")
    group = StageCgroup.create(LIMITS, root=root, own=_own(tmp_path, "0::/system.slice/airflow-worker.service\n"))
    assert group.v2 and group.pids_dir == group.memory_dir and group.pids_dir.parent == parent
    assert (parent / "cgroup.subtree_control").read_text() == "+pids +memory"
    assert (group.pids_dir / "pids.max").read_text() == "300"
    assert (group.memory_dir / "memory.max").read_text() == str(512 * MIB)
    assert group.procs_files == [group.pids_dir / "cgroup.procs"]
    (group.pids_dir / "pids.events").write_text("max 7\n")
    assert "limit of 300 processes" in (group.limit_reached() or "")
    for name in ("pids.max", "memory.max", "memory.swap.max", "pids.events"):
        (group.pids_dir / name).unlink(missing_ok=True)
    group.remove()
    assert not group.pids_dir.exists()


def test_v1_makes_one_directory_per_hierarchy_where_this_process_sits_in_each(tmp_path) -> None:
    root = tmp_path / "cgroup"
    for controller in ("pids", "memory/process_api/abc"):
        (root / controller).mkdir(parents=True)
    (root / "pids" / "cgroup.procs").write_text("")
    group = StageCgroup.create(LIMITS, root=root, own=_own(tmp_path, "8:pids:/\n4:memory:/process_api/abc\n0::/\n"))
    assert not group.v2
    assert group.pids_dir.parent == root / "pids" and group.memory_dir.parent == root / "memory/process_api/abc"
    assert (group.memory_dir / "memory.limit_in_bytes").read_text() == str(512 * MIB)
    assert group.procs_files == [group.pids_dir / "cgroup.procs", group.memory_dir / "cgroup.procs"]
    assert group.limit_reached() is None
    (group.memory_dir / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert "memory limit of 512 MiB" in (group.limit_reached() or "")


def test_no_cgroup_to_manage_is_said_not_hidden(tmp_path) -> None:
    with pytest.raises(CgroupUnavailableError, match="no pids controller"):
        StageCgroup.create(LIMITS, root=tmp_path / "nothing", own=_own(tmp_path, "0::/\n"))


def test_the_join_command_takes_the_cgroup_paths_as_arguments_and_execs_the_command(tmp_path) -> None:
    procs = tmp_path / "a dir; with $(odd) name" / "cgroup.procs"
    procs.parent.mkdir()
    group = StageCgroup(LIMITS, procs.parent, procs.parent, v2=True)
    done = subprocess.run(join_command(group, ["sh", "-c", 'echo "child $$"']), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"child {procs.read_text().strip()}", "the command is the process that joined"
    assert join_command(None, ["true"]) == ["true"]
