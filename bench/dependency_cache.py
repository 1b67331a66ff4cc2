"""Store-only cache against a node_modules snapshot, side by side, with the raw tools.

For the example worker (npm) and the pnpm monorepo, the median of REPS interleaved runs of:
  cold      a frozen install with an empty cache (what every run paid before the cache)
  store     the same install with the package manager's store warm (what the pipeline does)
  snapshot  restoring a tarball of node_modules saved after an install (what it chose not to do)
Run: ``python bench/dependency_cache.py`` (part of ``make bench``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPS = int(os.environ.get("BENCH_REPS", "3"))
PROJECTS = {"example worker (npm)": REPO / "examples" / "hello-worker",
            "pnpm monorepo": REPO / "tests" / "fixtures" / "projects" / "pnpm-monorepo"}


def install_env() -> dict[str, str]:
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org")
    return {**os.environ, "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0", "COREPACK_INTEGRITY_KEYS": "0",
            "COREPACK_NPM_REGISTRY": registry}


def install(project: Path, cache: Path) -> float:
    for modules in project.rglob("node_modules"):
        shutil.rmtree(modules, ignore_errors=True)
    if (project / "pnpm-lock.yaml").exists():
        argv = ["corepack", "pnpm", "install", "--frozen-lockfile", "--store-dir", str(cache / "pnpm"),
                "--package-import-method", "copy"]
    else:
        argv = ["npm", "ci", "--no-audit", "--no-fund"]
    started = time.monotonic()
    subprocess.run(argv, cwd=project, env={**install_env(), "npm_config_cache": str(cache / "npm")}, check=True,
                   capture_output=True)
    return time.monotonic() - started


def restore(project: Path, snapshot: Path) -> float:
    for modules in project.rglob("node_modules"):
        shutil.rmtree(modules, ignore_errors=True)
    started = time.monotonic()
    subprocess.run(["tar", "-xf", str(snapshot), "-C", str(project)], check=True)
    return time.monotonic() - started


def main() -> None:
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cfw-cache-bench-") as tmp:
        for name, source in PROJECTS.items():
            project = Path(tmp) / name.split()[0]
            shutil.copytree(source, project)
            warm = Path(tmp) / f"{project.name}-warm-cache"
            install(project, warm)  # fills the warm store once
            snapshot = Path(tmp) / f"{project.name}-node_modules.tar"
            modules = [str(p.relative_to(project)) for p in project.rglob("node_modules") if "node_modules" not in str(p.parent)]
            subprocess.run(["tar", "-cf", str(snapshot), *modules], cwd=project, check=True)
            rows = results.setdefault(name, {"cold": [], "store": [], "snapshot": []})
            for rep in range(REPS):  # interleaved
                rows["cold"].append(install(project, Path(tmp) / f"cold-{project.name}-{rep}"))
                rows["store"].append(install(project, warm))
                rows["snapshot"].append(restore(project, snapshot))
    print_medians(f"Dependency cache, median of {REPS} interleaved runs (seconds; ratio to cold)", results, "cold")


def print_medians(title: str, results: dict[str, dict[str, list[float]]], baseline: str) -> None:
    """Each project's median per row, with its ratio to the ``baseline`` row; then all as JSON."""
    print(f"\n{title}")
    for name, rows in results.items():
        base = statistics.median(rows[baseline])
        print(f"  {name}: " + ", ".join(f"{row} {statistics.median(v):.2f} s ({statistics.median(v) / base:.2f})"
                                      for row, v in rows.items()))
    print(json.dumps({name: {row: statistics.median(v) for row, v in rows.items()} for name, rows in results.items()}))


if __name__ == "__main__":
    sys.exit(main())
