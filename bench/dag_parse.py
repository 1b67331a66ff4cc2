"""Parse cost of the DAG file, side by side with the same file importing the providers eagerly.

The dag-processor re-parses DAG files every few seconds, so the file imports only ``airflow.sdk``
and the operator modules; provider hooks, boto3 and the kubernetes client load in ``execute()``.
Each measurement is a fresh interpreter that has already imported ``airflow.sdk`` (as the
dag-processor has), timing only the DAG file. Run: ``make bench``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "dags" / "build_and_upload_cloudflare_worker.py"
EAGER_IMPORTS = (
    "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: F401\n"
    "from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook  # noqa: F401\n"
    "from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401\n"
)
PROBE = ("import sys, time, runpy, airflow.sdk; sys.path.insert(0, sys.argv[2]); t = time.perf_counter(); "
         "runpy.run_path(sys.argv[1]); print(time.perf_counter() - t)")


def parse_seconds(path: Path, runs: int) -> list[float]:
    return [float(subprocess.run([sys.executable, "-c", PROBE, str(path), str(REPO)], check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]) for _ in range(runs)]


def main(runs: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        eager = Path(tmp) / "eager_dag.py"
        source = DAG_FILE.read_text()
        eager.write_text(EAGER_IMPORTS + source)
        ours, theirs = [], []
        for _ in range(runs):  # interleaved, so machine noise hits both alike
            ours += parse_seconds(DAG_FILE, 1)
            theirs += parse_seconds(eager, 1)
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"DAG file parse, median of {runs} fresh interpreters")
    print(f"  this DAG file (providers imported in execute): {ours_median * 1000:8.1f} ms")
    print(f"  same file importing KPO, KubernetesHook, S3Hook: {theirs_median * 1000:8.1f} ms")
    print(f"  ratio: {theirs_median / ours_median:.1f}x faster; target < 100 ms: {'met' if ours_median < 0.1 else 'MISSED'}")


if __name__ == "__main__":
    main()
