"""Stage 2: dependency installation."""

from __future__ import annotations

import platform
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from cloudflare_worker_pipeline.execution.egress import EgressPolicy
from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
from cloudflare_worker_pipeline.fingerprint import node_identity
from cloudflare_worker_pipeline.modes import ExecutionMode
from cloudflare_worker_pipeline.operators.node_stage import NodeStage
from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.provenance import parse_toolchain
from cloudflare_worker_pipeline.results import InstallResult
from cloudflare_worker_pipeline.settings import PipelineSettings

# install_env keys that name a registry the package managers (and corepack) fetch from.
REGISTRY_ENV = ("npm_config_registry", "NPM_CONFIG_REGISTRY", "COREPACK_NPM_REGISTRY", "YARN_NPM_REGISTRY_SERVER",
                "YARN_REGISTRY", "BUN_CONFIG_REGISTRY")


class InstallDependenciesOperator(NodeStage):
    """Install dependencies with the package manager the lockfile names, frozen.

    Runs in ``package-manager-directory`` (the project root unless set; ``.`` for a monorepo's
    workspace root). The ``install_env`` setting adds registry or corepack configuration.
    """

    script = "install.sh"
    egress = "registry"
    uses_dependency_cache = True
    results = ("package-manager", "toolchain")

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"package-manager-directory": p.package_manager_directory}

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        cache = self.dependency_cache(p)
        return {**self.settings.install_env, "INSTALL_DIR": str(p.install_dir),
                **({"DEPENDENCY_CACHE": str(cache)} if cache else {})}

    def dependency_cache(self, p: PipelineParameters) -> PurePosixPath | None:
        """Where the script sees the shared cache: a partition per platform and Node, or None."""
        settings = self.settings
        partition = re.sub(r"[^a-z0-9._-]+", "_", f"{platform.system()}-{platform.machine()}-"
                           f"{node_identity(settings, self.node_version)}".lower())
        if settings.execution_mode is ExecutionMode.KUBERNETES:
            return PurePosixPath(settings.pods.cache_mount_path, partition) if settings.dependency_cache_claim else None
        return PurePosixPath(settings.dependency_cache_dir, partition) if settings.dependency_cache_dir else None

    def stage_image(self) -> str:
        """A project with a Bun lockfile installs in ``bun_image`` when set (the script's own order:
        a Yarn or pnpm lockfile wins)."""
        pods, directory = self.settings.pods, self.pipeline.install_dir
        if pods.bun_image and bun_lockfile(directory):
            return pods.bun_image
        return super().stage_image()

    def sandbox_policy(self, p: PipelineParameters) -> SandboxPolicy:
        """The stage's usual view, plus the shared cache (writable: the package manager adds to it)."""
        policy = super().sandbox_policy(p)
        cache = self.dependency_cache(p)
        if cache is None:
            return policy
        return SandboxPolicy(writable=(*policy.writable, Path(cache)), home=policy.home, read_only=policy.read_only,
                             egress=policy.egress)

    def egress_policy(self, p: PipelineParameters) -> EgressPolicy | None:
        """The package manager (and corepack) may reach the registries: ``allowed_registry_hosts``
        and the hosts of the registry URLs in ``install_env``, on their ports."""
        return registry_egress(self.settings)

    def finish(self, results: dict[str, str], context: Any) -> InstallResult:
        return InstallResult(package_manager=results["package-manager"], toolchain=parse_toolchain(results["toolchain"]))


def bun_lockfile(directory: Path) -> bool:
    """Does install.sh pick Bun here? A Bun lockfile and no Yarn or pnpm one."""
    names = {"yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb"}
    present = {name for name in names if (directory / name).is_file()}
    return bool(present & {"bun.lock", "bun.lockb"}) and not present & {"yarn.lock", "pnpm-lock.yaml"}


def registry_egress(settings: PipelineSettings) -> EgressPolicy:
    """The install stage's egress: ``allowed_registry_hosts`` on 443, and each registry URL of
    ``install_env`` (a mirror) on its own port."""
    hosts, ports = list(settings.allowed_registry_hosts), {443}
    for key in REGISTRY_ENV:
        url = urlsplit(settings.install_env.get(key, ""))
        if url.hostname:
            hosts.append(url.hostname)
            ports.add(url.port or (80 if url.scheme == "http" else 443))
    return EgressPolicy(hosts=tuple(dict.fromkeys(hosts)), ports=frozenset(ports), setting="allowed_registry_hosts")
