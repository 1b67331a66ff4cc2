"""`make demo` as a newcomer runs it, twice: the first run builds and uploads the example, the
second finds the same commit's build stored and says it skipped it; the terminal shows a line per
task and the result, while Airflow's task-runner logs go to the file it names."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO, SESSION_DIR


def _demo(demo_dir: str) -> subprocess.CompletedProcess[str]:
    # As `make demo` starts it: none of the test session's Airflow settings.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    return subprocess.run([sys.executable, str(REPO / "examples" / "demo.py")], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**env, "CFW_DEMO_DIR": demo_dir})


def test_the_demo_shows_tasks_and_result_then_skips_the_same_commit_saying_so() -> None:
    demo_dir = SESSION_DIR / "demo"
    first = _demo(str(demo_dir))
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    assert "== Cloudflare Worker built and uploaded ==" in first.stdout
    assert re.search(r"^  upload\[0\] +success +\d+\.\d s$", first.stdout, re.M), first.stdout
    # The terminal: a line per task and the result; the task runner's logs in the file it names.
    log = demo_dir / "demo.log"
    assert f"Airflow's output (the task runner's logs) goes to {log}" in first.stdout
    assert len(first.stdout.splitlines()) < 45, first.stdout
    assert "[DAG TEST]" not in first.stdout + first.stderr
    logged = log.read_text()
    assert "[DAG TEST] end task task_id=publish" in logged and "npm ci" in logged
    commit = re.search(r"^commit +([0-9a-f]{40})$", first.stdout, re.M).group(1)  # type: ignore[union-attr]

    second = _demo(str(demo_dir))
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    notice = [line for line in second.stdout.splitlines() if line.startswith("Skipped: ")]
    assert len(notice) == 1 and f"hello-worker/{commit}.js already holds this commit's build" in notice[0], second.stdout
    for task in ("install", "bundle", "upload"):
        assert re.search(rf"^  {task} +skipped$", second.stdout, re.M), second.stdout
    assert re.search(rf"^commit +{commit}$", second.stdout, re.M)
