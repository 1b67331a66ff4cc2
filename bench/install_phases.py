"""The cost of the two-phase install, side by side with the one phase it replaced.

For the example worker (npm) and the pnpm fixture, with the package manager's store warm, the
median of REPS interleaved runs of, each timed from the first sandbox's start to the last's end:
  one phase   the frozen install with scripts on, in one bubblewrap sandbox reaching the registry
              through the egress proxy (what install did before issue 19)
  two phases  the fetch with scripts and hooks off in that sandbox, then the scripts in a second
              sandbox with no network (what install does now)
Both run the pipeline's own sandbox and egress proxy (``execution``), as a stage would.
Run: ``python bench/install_phases.py`` (part of ``make bench``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from cloudflare_worker_pipeline.execution.egress import EgressPolicy, EgressProxy, sandbox_env
from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy, sandboxed_popen

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.dependency_cache import print_medians  # noqa: E402
from examples.local_stack.pipeline_env import registry_hosts  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", "3"))
REGISTRY = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org")
PROJECTS = {"example worker (npm)": REPO / "examples" / "hello-worker",
            "pnpm": REPO / "tests" / "fixtures" / "projects" / "pnpm"}
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0", "COREPACK_INTEGRITY_KEYS": "0",
       "COREPACK_NPM_REGISTRY": REGISTRY,
       **{key: os.environ[key] for key in ("SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS") if key in os.environ}}


def one_phase(project: Path, cache: Path) -> list[tuple[str, bool]]:
    if (project / "pnpm-lock.yaml").exists():
        return [(f"corepack pnpm install --frozen-lockfile --store-dir {cache}/pnpm-store --package-import-method copy "
                 "--prefer-offline", True)]
    return [(f"npm_config_cache={cache}/npm npm ci", True)]


def two_phases(project: Path, cache: Path) -> list[tuple[str, bool]]:
    if (project / "pnpm-lock.yaml").exists():
        return [(f"corepack pnpm install --frozen-lockfile --ignore-scripts --ignore-pnpmfile --store-dir "
                 f"{cache}/pnpm-store --package-import-method copy --prefer-offline", True),
                ("corepack pnpm rebuild", False)]
    return [(f"npm_config_cache={cache}/npm npm ci --ignore-scripts", True), ("npm rebuild", False)]


def sandboxed(project: Path, cache: Path, command: str, network: bool) -> None:
    """``command`` in a stage's sandbox: with the egress proxy to the registry, or with no network."""
    home, results = project.parent / "home", project.parent / "results"
    writable = (project, home, results, *((cache,) if network else ()))
    ca = tuple(Path(os.path.realpath(path)) for path in (os.environ.get("SSL_CERT_FILE"),
                                                          os.environ.get("NODE_EXTRA_CA_CERTS")) if path)
    policy = SandboxPolicy(writable=writable, home=home, read_only=ca)
    env = {**ENV, "RESULTS_DIR": str(results)}
    proxy = EgressProxy(EgressPolicy(hosts=tuple(registry_hosts(REGISTRY).split(",")), ports=frozenset({443}),
                                     setting="allowed_registry_hosts")) if network else None
    try:
        if proxy is not None:
            policy = SandboxPolicy(writable=(*policy.writable, proxy.directory), home=home, read_only=ca)
            env.update(sandbox_env(proxy, home))
        program = (resources.files("cloudflare_worker_pipeline") / "scripts" / "prelude.sh").read_text()
        process = sandboxed_popen(policy, env, ["sh", "-c", f"{program}\ncd {project} && {command}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{output[-2000:]}")
    finally:
        if proxy is not None:
            proxy.close()


def install(project: Path, cache: Path, steps: list[tuple[str, bool]]) -> float:
    for modules in project.rglob("node_modules"):
        shutil.rmtree(modules, ignore_errors=True)
    started = time.monotonic()
    for command, network in steps:
        sandboxed(project, cache, command, network)
    return time.monotonic() - started


def main() -> None:
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cfw-phases-bench-") as tmp:
        for name, source in PROJECTS.items():
            project = Path(tmp) / name.split()[0] / "source"
            shutil.copytree(source, project)
            cache = Path(tmp) / f"{project.parent.name}-cache"
            install(project, cache, one_phase(project, cache))  # warms the store and corepack
            rows = results.setdefault(name, {"one phase": [], "two phases": []})
            for _ in range(REPS):  # interleaved, warm against warm
                rows["one phase"].append(install(project, cache, one_phase(project, cache)))
                rows["two phases"].append(install(project, cache, two_phases(project, cache)))
    print_medians(f"Install, one phase against two, warm store, median of {REPS} interleaved runs (seconds; ratio to "
                  "one)", results, "one phase")


if __name__ == "__main__":
    sys.exit(main())
