"""A build's fingerprint: what decides the bundle's bytes, hashed, so a run can tell that the object
at its key already holds this build and skip installing, bundling and uploading it again.

The inputs: the git trees of the project root and of the package manager directory (its files,
the lockfile, the Wrangler config, and through the lockfile Wrangler's version), the repository
and the owner (so a twin repository's build is never taken for this one's), the parameters that
choose them, the stage scripts of this pipeline version, and the Node that runs the build.
A commit touching only other directories has the same fingerprint. Each worker of a run has its own:
a commit changing one worker's project root rebuilds that worker only.

A bundle may read more: ``import "../shared/x"`` reaches outside both trees. The bundle stage
reports every file esbuild read, and :func:`inputs_outside` names those no hashed tree covers
(a package under ``node_modules`` is covered by the lockfile). Such a build is stored with the
fingerprint :data:`READS_OUTSIDE`, which no run computes: it is never skipped to.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
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
READS_OUTSIDE = "reads-outside-fingerprinted-directories"  # stored instead: never equal to a fingerprint

# The parameters that decide nothing :func:`bundle_fingerprint` must see, and why. Every other
# parameter is hashed: tests/unit/test_fingerprint.py changes each and sees the fingerprint change,
# and fails for a new parameter named in neither place.
UNHASHED_PARAMETERS = {
    "git-revision": "the commit's trees are hashed, not the name it was asked by",
    "git-branch": "the same: the trees, not the branch",
    "kustomize-base-directory": "the overlays render in every run, skipped or not",
    "r2-bucket-name": "where the build is stored, not what it is",
    "r2-endpoint-url": "the same",
    "r2-object-key": "the same",
    "worker-script-artifact-config-map-name": "written in every run, skipped or not",
    "kustomize-manifests-config-map-name": "the same",
    "force-rebuild": "it bypasses the skip",
    "node-version": "the Node that runs the build is hashed (its version here, its image in pods), not the request",
    "additional-workers": "each worker has its own fingerprint; the others' roots shape the install tree hashed",
}


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
        "sparse-checkout-directories": list(p.sparse_checkout_directories),  # what the build could read
        "install-env": settings.install_env,
        # what decides the outputs besides the sources, or whether this build passes its checks
        "source-maps": p.upload_source_maps, "size-limit": [p.bundle_size_limit_bytes, p.bundle_size_limit_applies_to],
        "max-bundle-bytes": settings.max_bundle_bytes,
        "wrangler-extra-args": list(p.wrangler_extra_args), "build-command": list(p.build_command),
        "typescript-check": p.typescript_check, "reproducibility-check": p.reproducibility_check,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def inputs_outside(listing: str, p: PipelineParameters, worker: Worker) -> list[str]:
    """The files in the clone the bundle read (``listing``: esbuild's inputs, relative to the
    worker's project root) that neither the fingerprinted trees nor the lockfile cover, relative
    to the clone, sorted. Files outside the clone (the worker's own) are not the repository's."""
    covered = [entry.split(":") for entry in input_directories(p, worker)]
    outside = set()
    for line in listing.splitlines():
        if not line or line.startswith(("<", "\0")) or ":" in line.split("/", 1)[0]:  # esbuild's virtual modules
            continue
        path = posixpath.normpath(posixpath.join(worker["project_root"], line))
        if path.startswith("../") or path == ".." or posixpath.isabs(path) or "node_modules" in path.split("/"):
            continue
        if not any(inside(path, directory) and not any(inside(path, other) for other in excluded)
                   for directory, *excluded in covered):
            outside.add(path)
    return sorted(outside)
