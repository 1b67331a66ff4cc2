"""A build's fingerprint: what decides the bundle's bytes, hashed, so a run can tell that the object
at its key already holds this build and skip installing, bundling and uploading it again.

The inputs: the git trees of the project root and of the package manager directory (its files,
the lockfile, the Wrangler config, and through the lockfile Wrangler's version), the repository
and the owner (so a twin repository's build is never taken for this one's), the parameters that
choose them, the stage scripts of this pipeline version, and the Node that runs the build.
A commit touching only other directories has the same fingerprint. Each worker of a run has its own:
a commit changing one worker's project root rebuilds that worker only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from functools import cache
from importlib import resources

from cloudflare_worker_pipeline.get_provider_info import VERSION
from cloudflare_worker_pipeline.modes import ExecutionMode
from cloudflare_worker_pipeline.node_version import image_for
from cloudflare_worker_pipeline.parameter_workers import inside
from cloudflare_worker_pipeline.parameters import PipelineParameters, Worker
from cloudflare_worker_pipeline.results import NodeVersion
from cloudflare_worker_pipeline.settings import PipelineSettings

FINGERPRINT_METADATA = "fingerprint"  # the object's metadata key


@cache
def _local_node_version(node: str) -> str:
    return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()


@cache
def _scripts_digest() -> str:
    scripts = resources.files("cloudflare_worker_pipeline") / "scripts"
    digest = hashlib.sha256()
    for name in ("prelude.sh", "install.sh", "bundle.sh", "typecheck.sh"):
        digest.update((scripts / name).read_bytes())
    return digest.hexdigest()


def local_node_version() -> str:
    """``node --version`` of the worker's own Node (``v20.19.1``), or "" without one."""
    node = shutil.which("node")
    return _local_node_version(node) if node else ""


def node_identity(settings: PipelineSettings, wanted: NodeVersion | None = None) -> str:
    """The Node the install and bundle stages run: the image in pods, the worker's node locally."""
    if settings.execution_mode is ExecutionMode.KUBERNETES:
        return image_for(settings.pods.node_image_template, settings.pods.node_image, wanted)
    return local_node_version() or "no node"


def input_directories(p: PipelineParameters, worker: Worker | None = None) -> list[str]:
    """The directories whose trees decide a worker's bundle (by default the first's): its project
    root, and the install directory without the other workers' project roots (``dir:excluded...``),
    so that a change to one worker's sources leaves the others' fingerprints as they were."""
    root = (worker or p.workers[0])["project_root"]
    install = p.package_manager_directory
    others = sorted({w["project_root"] for w in p.workers if w["project_root"] not in (root, install)
                     and inside(w["project_root"], install) and not inside(root, w["project_root"])})
    return sorted({root, ":".join([install, *others])})


def run_input_directories(p: PipelineParameters) -> list[str]:
    """The directories whose trees the checkout reports: those of every worker of the run."""
    return sorted({d for worker in p.workers for d in input_directories(p, worker)})


def bundle_fingerprint(run: PipelineParameters, worker: Worker, settings: PipelineSettings, input_trees: str,
                       node: NodeVersion | None = None) -> str:
    """SHA-256 (hex) of everything that decides ``worker``'s bundle, one of the ``run``'s workers."""
    directories, p = input_directories(run, worker), run.for_worker(worker)
    inputs = {
        "pipeline": VERSION, "scripts": _scripts_digest(), "node": node_identity(settings, node),
        "trees": sorted(line for line in input_trees.splitlines() if line.split("=", 1)[0] in directories),
        "repository": p.git_url, "owner": p.owner,  # a twin repository's build is never this one's
        "project-root": p.project_root, "package-manager-directory": p.package_manager_directory,
        "install-env": settings.install_env,
        # what decides the outputs besides the sources, or whether this build passes its checks
        "source-maps": p.upload_source_maps, "size-limit": [p.bundle_size_limit_bytes, p.bundle_size_limit_applies_to],
        "max-bundle-bytes": settings.max_bundle_bytes,
        "wrangler-extra-args": list(p.wrangler_extra_args), "build-command": list(p.build_command),
        "typescript-check": p.typescript_check, "reproducibility-check": p.reproducibility_check,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
