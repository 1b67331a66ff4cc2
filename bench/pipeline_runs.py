"""`make bench`: the pipeline against the raw tools, measured side by side in one run.

Rows, each the median of REPS interleaved runs (the order rotating each rep), every one timed from
process start (or from the trigger), as seconds and as a ratio to its own raw baseline, with the
peak memory of the largest process:

  (a) bench/raw_pipeline.sh: clone, frozen install with an empty cache, Wrangler, one put, kustomize
  (a-warm) the same with the package cache of the last run; (a-skip) a careful script's skip of a
      commit already built: git ls-remote and one HEAD
  (b) the DAG through dag.test(), a new commit, the shared dependency cache empty  (vs a)
  (c) the DAG, a new commit touching only source (lockfile unchanged), the cache warm  (vs a-warm)
  (d) the DAG, the same commit again (nothing built or uploaded)  (vs a-skip)
  (e) through a running Airflow (LocalExecutor, PostgreSQL), trigger to success: a new commit
      (vs a-warm) and the same commit (vs a-skip), interleaved with the raw runs and with
  (floor) a no-op DAG of the pipeline's exact shape (bench/dags/pipeline_shape_noop.py) on the same
      Airflow: what Airflow's scheduling alone costs for this graph
  (f) four services triggered at once on that Airflow, until all succeeded

For (e) and the floor, a per-hop breakdown along the critical path, from the task instances'
timestamps: scheduling (upstream done -> queued), queued -> started, and in the task process
(started -> ended: its start-up, the DAG parse, execute()).

on examples/hello-worker (npm) and a pnpm monorepo. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from examples.local_stack.pipeline_env import BUCKET, DAG_ID, SETTING, pipeline_env  # noqa: E402

NOOP_DAG_ID = "pipeline_shape_noop"  # bench/dags/pipeline_shape_noop.py

ROOT = Path(os.environ.get("BENCH_ROOT") or tempfile.mkdtemp(prefix="cfw-bench-"))
ACCESS_KEY, SECRET_KEY = "bench-access-key", "bench-secret-key"
REPS = int(os.environ.get("BENCH_REPS", "3"))
DAG_ENV = {
    "BENCH_ROOT": str(ROOT),  # the --dag-test child finds the same stack
    "AIRFLOW_HOME": str(ROOT / "airflow-dagtest"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{ROOT / 'dagtest.db'}",
    SETTING + "DEPENDENCY_CACHE_DIR": str(ROOT / "dependency-cache"),
    **pipeline_env(ROOT, ACCESS_KEY, SECRET_KEY),
}


@dataclass
class Project:
    name: str
    source: Path
    conf: dict[str, str]
    repo: object = None
    runs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # row -> [(seconds, peak MiB)]
    hops: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # row -> hop -> [seconds per run]


# Runs a command and reports the largest RSS among its process tree (this wrapper's children only).
PEAK_WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
                "print(f'PEAK_KIB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); "
                "sys.exit(code)")


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv`` in a fresh process; its wall time, its tree's largest RSS (MiB) and its output."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *argv], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    peak = int(done.stderr.rsplit("PEAK_KIB=", 1)[1].split()[0]) / 1024
    return seconds, peak, done.stdout


def raw_run(project: Project, s3_url: str, key: str, mode: str = "cold") -> tuple[float, float]:
    """bench/raw_pipeline.sh in ``mode`` (cold, warm, skip); each project keeps its own package cache."""
    env = {"RAW_MODE": mode, "CACHE": str(ROOT / f"raw-cache-{project.name.split()[0]}"), **{**os.environ, **json.loads(DAG_ENV[SETTING + "INSTALL_ENV"]), "GIT_URL": project.repo.url, "PROJECT_ROOT": project.conf.get("project-root", "") or ".",  # type: ignore[attr-defined]
           "PM_DIR": project.conf.get("package-manager-directory", "") or project.conf.get("project-root", "") or ".",
           "WORK": str(ROOT / "raw"), "ENDPOINT": s3_url, "BUCKET": BUCKET, "KEY": key,
           "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "PYTHON": sys.executable}}
    seconds, peak, _ = measure(["sh", str(REPO / "bench" / "raw_pipeline.sh")], env)
    return seconds, peak


def dag_test_run(conf: dict[str, str]) -> tuple[float, float]:
    """One dag.test() run in a fresh interpreter, timed from its process start: Airflow's imports,
    the DAG's parse and dag.test()'s in-process execution API included, as a raw script's are."""
    seconds, peak, out = measure([sys.executable, __file__, "--dag-test", json.dumps(conf)], {**os.environ, **DAG_ENV})
    result = json.loads(out.strip().splitlines()[-1])
    if result["state"] != "success":
        raise RuntimeError(f"dag.test() ended {result['state']}: {result['tasks']}")
    return seconds, peak


def _dag_test_child(conf_json: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from examples.local_stack.dag_run import run_pipeline

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(DAG_ID)
    run = run_pipeline(dag, json.loads(conf_json))
    print(json.dumps({"state": run.state, "tasks": run.task_states}))


def touch_source(project: Project, rep: int, row: str) -> None:
    """A new commit that changes the bundle but not the lockfile."""
    root = project.conf.get("project-root") or "."
    project.repo.commit({f"{root}/src/bench-{row}-{rep}.ts": f"export const bench = {rep};\n"}, f"bench {row} {rep}")  # type: ignore[attr-defined]


def median_row(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s for s, _ in runs), max(p for _, p in runs)


def rotated(steps: list[Any], rep: int) -> list[Any]:
    """``steps`` starting at a different one each rep, so no row always runs first (or warmest)."""
    shift = rep % len(steps)
    return steps[shift:] + steps[:shift]


ROWS = {  # row -> (label, the raw row it is divided by)
    "a": ("(a) raw tools: clone, install (empty cache), wrangler, put", "a"),
    "a-warm": ("(a-warm) raw tools, the package cache of the last run", "a-warm"),
    "a-skip": ("(a-skip) raw skip: git ls-remote + one HEAD", "a-skip"),
    "b": ("(b) dag.test(), new commit, dependency cache empty", "a"),
    "c": ("(c) dag.test(), new commit, source only, cache warm", "a-warm"),
    "d": ("(d) dag.test(), same commit again (nothing built)", "a-skip"),
    "e-new": ("(e) running Airflow, new commit, trigger to success", "a-warm"),
    "e-same": ("(e) running Airflow, same commit, trigger to success", "a-skip"),
    "floor": ("(floor) running Airflow, no-op DAG of the same shape", ""),
    "f": ("(f) running Airflow, 4 services at once, until all done", "a-warm"),
}


def print_table(projects: list[Project]) -> None:
    load = os.getloadavg()
    print(f"\nMedian of {REPS} interleaved runs; {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, load {load[0]:.1f} {load[1]:.1f}; "
          "ratio to the row's raw baseline; peak = largest process RSS")
    for project in projects:
        print(f"\n{project.name}")
        print(f"  {'row':<58} {'seconds':>8} {'ratio':>12} {'peak MiB':>9}")
        for row, (label, baseline) in ROWS.items():
            if row not in project.runs:
                continue
            seconds, peak = median_row(project.runs[row])
            ratio = f"{seconds / median_row(project.runs[baseline])[0]:6.2f} {baseline:>5}" if baseline else ""
            shown = f"{peak:9.0f}" if peak else f"{'-':>9}"  # a running Airflow's processes are not this bench's
            print(f"  {label:<58} {seconds:8.2f} {ratio:>12} {shown}")
        for row in ("e-new", "e-same"):
            if row in project.runs and "floor" in project.runs and "a-warm" in project.runs:
                raw = median_row(project.runs["a-warm" if row == "e-new" else "a-skip"])[0]
                floor = median_row(project.runs["floor"])[0]
                excess = median_row(project.runs[row])[0] - raw
                print(f"  {row}: pipeline - raw = {excess:.2f} s = {excess / floor:.2f} x floor ({floor:.2f} s)")
        for row, hops in project.hops.items():
            print(f"  per hop, {row} (median s along the critical path): " + ", ".join(
                f"{name} {statistics.median(values):.2f}" for name, values in hops.items()))


def main() -> int:
    import boto3
    from botocore.config import Config

    from examples.local_stack.git_daemon import start_git_daemon
    from examples.local_stack.seaweedfs import start_seaweedfs

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stack on the way out
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    s3 = start_seaweedfs(ROOT / "seaweedfs", ACCESS_KEY, SECRET_KEY)
    git = start_git_daemon(ROOT / "git")
    airflow = postgres = None
    try:
        boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                     region_name="auto", config=Config(request_checksum_calculation="when_required")
                     ).create_bucket(Bucket=BUCKET)
        subprocess.run([sys.executable, "-c", "from airflow.utils.db import resetdb; resetdb()"],
                       env={**os.environ, **DAG_ENV}, check=True, capture_output=True)
        projects = [
            Project("example worker (npm, 3 overlays)", REPO / "examples" / "hello-worker", {}),
            Project("pnpm monorepo", REPO / "tests" / "fixtures" / "projects" / "pnpm-monorepo",
                    {"project-root": "services/api-worker", "package-manager-directory": ".",
                     "sparse-checkout-directories": "services/api-worker,packages"}),
        ]
        for index, project in enumerate(projects):
            project.repo = git.publish(f"bench-{index}", project.source)
            project.conf = {
                "git-url": project.repo.url, "r2-bucket-name": BUCKET, "r2-endpoint-url": s3.endpoint_url,  # type: ignore[attr-defined]
                "r2-object-key": f"bench-{index}/worker.js",
                "worker-script-artifact-config-map-name": f"bench-{index}-artifact",
                "kustomize-manifests-config-map-name": f"bench-{index}-manifests", **project.conf}
        def record(project: Project, row: str, result: tuple[float, float]) -> None:
            project.runs.setdefault(row, []).append(result)

        for rep in range(REPS):  # interleaved and rotated: machine noise hits every row alike
            for project in projects:
                def cold(p: Project = project, r: int = rep) -> None:
                    touch_source(p, r, "cold")
                    record(p, "a", raw_run(p, s3.endpoint_url, "raw.js", "cold"))
                    shutil.rmtree(ROOT / "dependency-cache", ignore_errors=True)
                    record(p, "b", dag_test_run(p.conf))

                def warm(p: Project = project, r: int = rep) -> None:
                    touch_source(p, r, "warm")  # the same lockfile: both caches hold its packages
                    record(p, "a-warm", raw_run(p, s3.endpoint_url, "raw.js", "warm"))
                    record(p, "c", dag_test_run(p.conf))
                    record(p, "a-skip", raw_run(p, s3.endpoint_url, "raw.js", "skip"))
                    record(p, "d", dag_test_run(p.conf))

                for step in rotated([cold, warm], rep):
                    step()
                print(f"rep {rep + 1}/{REPS} {project.name}: " + ", ".join(
                    f"{row} {runs[-1][0]:.1f} s" for row, runs in project.runs.items()), flush=True)

        airflow, postgres = start_running_airflow(s3.endpoint_url)
        for rep in range(REPS):
            for project in projects:
                touch_source(project, rep, "e-new")
                steps = [lambda p=project: record(p, "a-warm", raw_run(p, s3.endpoint_url, "raw.js", "warm")),
                         lambda p=project: record(p, "e-new", trigger_and_wait(airflow, [p.conf], p, "e-new")),
                         lambda p=project: record(p, "floor", trigger_and_wait(airflow, [{}], p, "floor", NOOP_DAG_ID))]
                for step in rotated(steps, rep):
                    step()
                steps = [lambda p=project: record(p, "a-skip", raw_run(p, s3.endpoint_url, "raw.js", "skip")),
                         lambda p=project: record(p, "e-same", trigger_and_wait(airflow, [p.conf], p, "e-same"))]
                for step in rotated(steps, rep):
                    step()
        example = projects[0]
        services = []
        for number in range(4):
            touch_source(example, number, "f")
            services.append({**example.conf, "r2-object-key": f"service-{number}/worker.js",
                             "worker-script-artifact-config-map-name": f"service-{number}-artifact",
                             "kustomize-manifests-config-map-name": f"service-{number}-manifests",
                             "owner-identifier-label-key": "planton.cloud/service-id",
                             "owner-identifier-label-value": f"svc-{number}"})
        example.runs["f"] = [trigger_and_wait(airflow, services)]

        print_table(projects)
        subprocess.run([sys.executable, str(REPO / "bench" / "dag_parse.py")], check=True)
        return 0
    finally:
        if airflow is not None:
            airflow.stop()
        if postgres is not None:
            postgres.stop()
        git.stop()
        s3.stop()


def start_running_airflow(s3_url: str) -> tuple[object, object]:
    from examples.local_stack.airflow_server import start_airflow
    from examples.local_stack.postgres import start_postgres

    postgres = start_postgres(Path(tempfile.mkdtemp(prefix="cfw-bench-pg-")) / "pg")
    dags = ROOT / "dags"  # the pipeline's DAG files and the floor's
    dags.mkdir(exist_ok=True)
    for source in (*sorted((REPO / "dags").glob("*.py")), REPO / "bench" / "dags" / "pipeline_shape_noop.py"):
        shutil.copy(source, dags / source.name)
    airflow = start_airflow(ROOT / "airflow", postgres.url, dags, {
        **{key: value for key, value in DAG_ENV.items() if key.startswith((SETTING, "AIRFLOW_CONN_"))},
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    })
    airflow.wait_for_dag(DAG_ID, timeout=180)
    airflow.wait_for_dag(NOOP_DAG_ID, timeout=180)
    return airflow, postgres


def trigger_and_wait(airflow: object, confs: list[dict[str, str]], project: Project | None = None,
                     row: str = "", dag_id: str = DAG_ID) -> tuple[float, float]:
    """Trigger a run per conf at once; seconds until the last one succeeded (and no peak: a running
    Airflow's processes are not this bench's). With ``project``, records the run's per-hop breakdown."""
    api = airflow.api()  # type: ignore[attr-defined]
    url = f"{airflow.url}/api/v2/dags/{dag_id}/dagRuns"  # type: ignore[attr-defined]
    started = time.monotonic()
    run_ids = []
    pending = {api.post(url, json={"logical_date": None, "conf": conf}, timeout=30).json()["dag_run_id"] for conf in confs}
    run_ids = sorted(pending)
    while pending:  # polled often, so the figure is the run's, not the poll's
        for run_id in list(pending):
            state = api.get(f"{url}/{run_id}", timeout=10).json()["state"]
            if state == "failed":
                raise RuntimeError(f"run {run_id} failed")
            if state == "success":
                pending.discard(run_id)
        if time.monotonic() - started > 900:
            raise TimeoutError(f"runs {pending} did not finish")
        time.sleep(0.2)
    seconds = time.monotonic() - started
    if project is not None:
        for name, value in hop_breakdown(api, f"{url}/{run_ids[0]}").items():
            project.hops.setdefault(row, {}).setdefault(name, []).append(value)
    return seconds, 0.0


def hop_breakdown(api: Any, run_url: str) -> dict[str, float]:
    """Where a run's time went, along its critical path (from the last task to end, back through
    the upstream that ended last): scheduling (upstream ended, or the run was queued, -> queued),
    queued -> started, and in the task process (started -> ended)."""
    from datetime import datetime

    def at(value: str) -> float:
        return datetime.fromisoformat(value).timestamp()

    run = api.get(run_url, timeout=10).json()
    tis = [ti for ti in api.get(f"{run_url}/taskInstances", timeout=10).json()["task_instances"]
           if ti["start_date"] and ti["end_date"] and ti["queued_when"]]
    structure = api.get(run_url.split("/dagRuns/")[0] + "/tasks", timeout=10).json()["tasks"]
    upstream = {task["task_id"]: [t["task_id"] for t in structure if task["task_id"] in t["downstream_task_ids"]]
                for task in structure}
    by_task: dict[str, list[dict[str, Any]]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    hops = {"scheduling": 0.0, "queued->started": 0.0, "in task": 0.0, "tasks": 0.0}
    ti: dict[str, Any] | None = max(tis, key=lambda t: at(t["end_date"]))
    while ti is not None:
        before = [max(by_task[u], key=lambda t: at(t["end_date"])) for u in upstream.get(ti["task_id"], []) if u in by_task]
        previous = max(before, key=lambda t: at(t["end_date"])) if before else None
        ready = at(previous["end_date"]) if previous else at(run["queued_at"] or run["start_date"])
        hops["scheduling"] += at(ti["queued_when"]) - ready
        hops["queued->started"] += at(ti["start_date"]) - at(ti["queued_when"])
        hops["in task"] += at(ti["end_date"]) - at(ti["start_date"])
        hops["tasks"] += 1
        ti = previous
    return hops


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--dag-test":
        os.environ.update(DAG_ENV)
        _dag_test_child(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
