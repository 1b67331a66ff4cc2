"""The toolchain a build used, as the worker measures it, for the provenance statement.

What code inside the sandbox reports (a package manager's ``--version``, a digest it computed) is
the repository's to forge: a ``postinstall`` once recorded Node ``v0.0.0-RT-FORGED``, and a
``yarnPath`` release chooses the Yarn version it prints (issue 20). So the worker measures what
it can itself, outside every sandbox and pod, and before any repository code has run (at the end
of checkout, which runs git alone):

- the lockfile's digest, from the clone: the same file the install then reads;
- the package manager, from the lockfile, and its version from ``packageManager`` (the version
  corepack runs), or the worker's own npm (or the image, in the kubernetes mode);
- Node: the worker's own binary, or the image.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, read_build_file
from cloudflare_worker_pipeline.fingerprint import node_identity
from cloudflare_worker_pipeline.modes import ExecutionMode
from cloudflare_worker_pipeline.node_version import image_for
from cloudflare_worker_pipeline.results import NodeVersion
from cloudflare_worker_pipeline.settings import PipelineSettings

# The install stage's detection order (scripts/install.sh), and the manager each lockfile means.
LOCKFILES = (("yarn.lock", "yarn"), ("pnpm-lock.yaml", "pnpm"), ("bun.lock", "bun"), ("bun.lockb", "bun"),
             ("package-lock.json", "npm"))
MAX_LOCKFILE_BYTES = 64 * 1024 * 1024


@cache
def _version_of(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        return ""
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    return done.stdout.strip()[:100] if done.returncode == 0 else ""


def measured_toolchain(workspace: Path, install_dir: Path, settings: PipelineSettings,
                       node: NodeVersion | None) -> dict[str, str]:
    """``lockfile`` (relative to the install directory) and ``lockfile-sha256``, ``package-manager``
    (``npm@10.8.2``, ``pnpm@9.15.0``, ``yarn (corepack's default)``...) and ``node``, measured."""
    relative = install_dir.relative_to(workspace)
    toolchain = {"node": node_identity(settings, node)}
    manager = "npm"
    for name, kind in LOCKFILES:
        if (install_dir / name).exists() or (install_dir / name).is_symlink():
            body = _read(workspace, relative / name)
            toolchain.update({"lockfile": name, "lockfile-sha256": hashlib.sha256(body).hexdigest()})
            manager = kind
            break
    toolchain["package-manager"] = _package_manager(manager, _declared(workspace, relative / "package.json"), settings,
                                                    node)
    return toolchain


def _read(workspace: Path, relative: Path) -> bytes:
    try:
        return read_build_file(workspace, relative, max_bytes=MAX_LOCKFILE_BYTES)
    except UnsafeBuildFileError as error:
        raise UnsafeBuildFileError(f"the lockfile {error}") from None


def _declared(workspace: Path, package_json: Path) -> str:
    """package.json's ``packageManager`` (``pnpm@9.15.0``), or ""."""
    try:
        document = json.loads(read_build_file(workspace, package_json, max_bytes=1024 * 1024))
    except (UnsafeBuildFileError, ValueError, OSError):
        return ""
    declared = document.get("packageManager") if isinstance(document, dict) else None
    return declared.split("+", 1)[0][:100] if isinstance(declared, str) else ""


def _package_manager(manager: str, declared: str, settings: PipelineSettings, node: NodeVersion | None) -> str:
    if manager in ("yarn", "pnpm"):  # corepack runs the declared version, or its own default
        return declared if declared.startswith(manager + "@") else f"{manager} (corepack's default)"
    pods = settings.pods
    if settings.execution_mode is ExecutionMode.KUBERNETES:
        image = pods.bun_image if manager == "bun" and pods.bun_image else \
            image_for(pods.node_image_template, pods.node_image, node)
        return f"{manager} of image {image}"
    version = _version_of(manager)
    return f"{manager}@{version}" if version else manager
