"""Parse cost of the DAG file, as the dag-processor pays it, beside two variants of it.

Each figure is the median over fresh interpreters that have imported ``airflow.sdk``, timing only
the DAG file, interleaved so the machine's noise hits all alike:

  (a) as a dag-processor parses it: Airflow imports the ``airflow.*`` modules a DAG file names
      once, before it forks each parse (``[dag_processor] parsing_pre_import_modules``, on by
      default); the file names the ones the pipeline's graph is built from. The target: <= 50 ms.
  (b) as a task process parses it: every task parses the file again, without that pre-import
      (the same as a dag-processor with ``parsing_pre_import_modules = False``).
  (c) (b) for the file importing the cncf-kubernetes and Amazon providers' operator and hooks at
      the top, as a DAG doing its work at the top level would (this one loads them in ``execute()``).

Run: ``make bench`` (or ``.venv/bin/python bench/dag_parse.py``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "dags" / "build_and_upload_cloudflare_worker.py"
TARGET_MS = 50.0
EAGER_IMPORTS = (
    "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: F401\n"
    "from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook  # noqa: F401\n"
    "from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401\n"
)
# argv: the DAG file, the package's directory, "pre" to pre-import as the dag-processor does.
PROBE = """\
import importlib, runpy, sys, time
import airflow.sdk
from airflow.utils.file import iter_airflow_imports
sys.path.insert(0, sys.argv[2])
if sys.argv[3] == "pre":
    for module in iter_airflow_imports(sys.argv[1]):
        importlib.import_module(module)
started = time.perf_counter()
runpy.run_path(sys.argv[1])
print(time.perf_counter() - started)
"""


def parse_seconds(path: Path, *, pre_import: bool) -> float:
    """One parse of ``path`` in a fresh interpreter, in seconds."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(path), str(REPO / "operators"),
                           "pre" if pre_import else "no"], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def measure(runs: int = 7) -> dict[str, float]:
    """Median parse seconds per variant: ``processor`` (a), ``no-pre-import`` (b), ``eager`` (c)."""
    with tempfile.TemporaryDirectory() as tmp:
        eager = Path(tmp) / "eager_dag.py"
        eager.write_text(EAGER_IMPORTS + DAG_FILE.read_text())
        samples: dict[str, list[float]] = {"processor": [], "no-pre-import": [], "eager": []}
        for _ in range(runs):  # interleaved
            samples["processor"].append(parse_seconds(DAG_FILE, pre_import=True))
            samples["no-pre-import"].append(parse_seconds(DAG_FILE, pre_import=False))
            samples["eager"].append(parse_seconds(eager, pre_import=False))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(runs: int = 7) -> None:
    medians = measure(runs)
    processor = medians["processor"] * 1000
    print(f"DAG file parse, median of {runs} fresh interpreters each")
    print(f"  (a) as a dag-processor parses it (pre-import on):          {processor:7.1f} ms")
    print(f"  (b) as a task process parses it (no pre-import):            {medians['no-pre-import'] * 1000:7.1f} ms")
    print(f"  (c) (b) importing KPO, KubernetesHook, S3Hook at the top:   {medians['eager'] * 1000:7.1f} ms"
          f"  ({medians['eager'] / medians['no-pre-import']:.1f}x (b))")
    print(f"  target (a) <= {TARGET_MS:.0f} ms: {'met' if processor <= TARGET_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
