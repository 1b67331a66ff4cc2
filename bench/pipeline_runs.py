"""`make bench`: the pipeline against the raw tools, measured side by side in one run.

Rows, each the median of REPS interleaved runs, as seconds and as a ratio to (a), with the peak
memory of the largest process:

  (a) bench/raw_pipeline.sh: clone, frozen install with an empty cache, Wrangler, one put, kustomize
  (b) the DAG through dag.test(), a new commit, the shared dependency cache empty
  (c) the DAG, a new commit touching only source (lockfile unchanged), the cache warm
  (d) the DAG, the same commit again (nothing built or uploaded)
  (e) (b)-(d) through a running Airflow (LocalExecutor, PostgreSQL), trigger to success
  (f) four services triggered at once on that Airflow, until all succeeded

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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from examples.local_stack.pipeline_env import BUCKET, DAG_ID, SETTING, pipeline_env  # noqa: E402

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


def raw_run(project: Project, s3_url: str, key: str) -> tuple[float, float]:
    env = {**os.environ, **json.loads(DAG_ENV[SETTING + "INSTALL_ENV"]), "GIT_URL": project.repo.url, "PROJECT_ROOT": project.conf.get("project-root", "") or ".",  # type: ignore[attr-defined]
           "PM_DIR": project.conf.get("package-manager-directory", "") or project.conf.get("project-root", "") or ".",
           "WORK": str(ROOT / "raw"), "ENDPOINT": s3_url, "BUCKET": BUCKET, "KEY": key,
           "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "PYTHON": sys.executable}
    seconds, peak, _ = measure(["sh", str(REPO / "bench" / "raw_pipeline.sh")], env)
    return seconds, peak


API_STARTS: list[float] = []  # each dag.test() child's execution API start-up, paid before its clock


def dag_test_run(conf: dict[str, str]) -> tuple[float, float]:
    """One dag.test() run in a fresh interpreter; the time of the run itself (imports and the
    execution API's start-up excluded, see _start_execution_api)."""
    _, peak, out = measure([sys.executable, __file__, "--dag-test", json.dumps(conf)], {**os.environ, **DAG_ENV})
    result = json.loads(out.strip().splitlines()[-1])
    if result["state"] != "success":
        raise RuntimeError(f"dag.test() ended {result['state']}: {result['tasks']}")
    API_STARTS.append(float(result["api_seconds"]))
    return float(result["seconds"]), peak


def _start_execution_api() -> float:
    """Start the execution API that dag.test() runs tasks through; the seconds it took.

    dag.test() builds it in-process when its first task starts (FastAPI and Cadwyn routes, ~2 s
    here); a running Airflow's API server has it up before any run. Like the imports, it is paid
    before the clock starts, and the table prints what it cost.
    """
    import httpx
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    started = time.monotonic()
    api = in_process_api_server()
    with httpx.Client(transport=api.transport, base_url="http://in-process.invalid") as client:
        client.get("/health").raise_for_status()  # the first request builds the versioned routes
    return time.monotonic() - started


def _dag_test_child(conf_json: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from examples.local_stack.dag_run import run_pipeline

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(DAG_ID)
    api_seconds = _start_execution_api()
    started = time.monotonic()
    run = run_pipeline(dag, json.loads(conf_json))
    print(json.dumps({"seconds": time.monotonic() - started, "api_seconds": api_seconds, "state": run.state,
                      "tasks": run.task_states}))


def touch_source(project: Project, rep: int, row: str) -> None:
    """A new commit that changes the bundle but not the lockfile."""
    root = project.conf.get("project-root") or "."
    project.repo.commit({f"{root}/src/bench-{row}-{rep}.ts": f"export const bench = {rep};\n"}, f"bench {row} {rep}")  # type: ignore[attr-defined]


def median_row(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s for s, _ in runs), max(p for _, p in runs)


def print_table(projects: list[Project], rows: dict[str, str]) -> None:
    print(f"\nMedian of {REPS} interleaved runs, {os.cpu_count()} cores; ratio to (a); peak = largest process RSS")
    for project in projects:
        base, _ = median_row(project.runs["a"])
        print(f"\n{project.name}")
        print(f"  {'row':<58} {'seconds':>8} {'ratio':>7} {'peak MiB':>9}")
        for row, label in rows.items():
            if row not in project.runs:
                continue
            seconds, peak = median_row(project.runs[row])
            shown = f"{peak:9.0f}" if peak else f"{'-':>9}"  # a running Airflow's processes are not this bench's
            print(f"  {label:<58} {seconds:8.2f} {seconds / base:7.2f} {shown}")


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
        for rep in range(REPS):  # interleaved: machine noise hits every row alike
            for project in projects:
                project.runs.setdefault("a", []).append(raw_run(project, s3.endpoint_url, f"raw-{rep}.js"))
                shutil.rmtree(ROOT / "dependency-cache", ignore_errors=True)
                touch_source(project, rep, "b")
                project.runs.setdefault("b", []).append(dag_test_run(project.conf))
                touch_source(project, rep, "c")
                project.runs.setdefault("c", []).append(dag_test_run(project.conf))
                project.runs.setdefault("d", []).append(dag_test_run(project.conf))
                print(f"rep {rep + 1}/{REPS} {project.name}: " + ", ".join(
                    f"{row} {runs[-1][0]:.1f} s" for row, runs in project.runs.items()), flush=True)

        airflow, postgres = start_running_airflow(s3.endpoint_url)
        for rep in range(REPS):
            for project in projects:
                touch_source(project, rep, "e-new")
                project.runs.setdefault("e-new", []).append((trigger_and_wait(airflow, [project.conf]), 0.0))
                project.runs.setdefault("e-same", []).append((trigger_and_wait(airflow, [project.conf]), 0.0))
        example = projects[0]
        services = []
        for number in range(4):
            touch_source(example, number, "f")
            services.append({**example.conf, "r2-object-key": f"service-{number}/worker.js",
                             "worker-script-artifact-config-map-name": f"service-{number}-artifact",
                             "kustomize-manifests-config-map-name": f"service-{number}-manifests",
                             "owner-identifier-label-key": "planton.cloud/service-id",
                             "owner-identifier-label-value": f"svc-{number}"})
        example.runs["f"] = [(trigger_and_wait(airflow, services), 0.0)]

        print_table(projects, {
            "a": "(a) raw tools: clone, install (empty cache), wrangler, put",
            "b": "(b) dag.test(), new commit, dependency cache empty",
            "c": "(c) dag.test(), new commit, source only, cache warm",
            "d": "(d) dag.test(), same commit again (nothing built)",
            "e-new": "(e) running Airflow, new commit, trigger to success",
            "e-same": "(e) running Airflow, same commit, trigger to success",
            "f": "(f) running Airflow, 4 services at once, until all done",
        })
        print(f"\n(b)-(d) exclude dag.test()'s in-process execution API start-up, median "
              f"{statistics.median(API_STARTS):.2f} s per run, as a running Airflow has it up already")
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
    airflow = start_airflow(ROOT / "airflow", postgres.url, REPO / "dags", {
        **{key: value for key, value in DAG_ENV.items() if key.startswith((SETTING, "AIRFLOW_CONN_"))},
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    })
    airflow.wait_for_dag(DAG_ID, timeout=180)
    return airflow, postgres


def trigger_and_wait(airflow: object, confs: list[dict[str, str]]) -> float:
    """Trigger a run per conf at once; seconds until the last one succeeded."""
    api = airflow.api()  # type: ignore[attr-defined]
    url = f"{airflow.url}/api/v2/dags/{DAG_ID}/dagRuns"  # type: ignore[attr-defined]
    started = time.monotonic()
    pending = {api.post(url, json={"logical_date": None, "conf": conf}, timeout=30).json()["dag_run_id"] for conf in confs}
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
    return time.monotonic() - started


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--dag-test":
        os.environ.update(DAG_ENV)
        _dag_test_child(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
