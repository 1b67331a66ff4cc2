"""Stage 2: dependency installation."""

from __future__ import annotations

import enum
import platform
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cloudflare_worker_pipeline.operators.node_stage import NodeStage
from cloudflare_worker_pipeline.operators.stage import StageOperator

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.execution.egress import EgressPolicy
    from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
    from cloudflare_worker_pipeline.parameters import PipelineParameters
    from cloudflare_worker_pipeline.results import InstallResult


FETCHED_XCOM = "fetched"


class InstallPhase(enum.Enum):
    """The install stage's two phases, each its own sandbox or pod."""

    FETCH = "fetch"  # the package manager alone, scripts and hooks off, the registries through the proxy
    SCRIPTS = "scripts"  # the install scripts the fetch left out, with no network


class InstallDependenciesOperator(NodeStage):
    """Install dependencies with the package manager the lockfile names, frozen, in two phases:
    fetch (scripts and hooks off; the only phase with a network, and that only to the registries)
    and then the install scripts (``install_scripts``), with no network at all, so no repository
    code ever runs where it could reach anything.

    Runs in ``package-manager-directory`` (the project root unless set; ``.`` for a monorepo's
    workspace root). The ``install_env`` setting adds registry or corepack configuration.
    """

    script = "install.sh"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enter(InstallPhase.FETCH)

    def enter(self, phase: InstallPhase) -> None:
        """Become ``phase``: its egress, cache, declared results and where a deferred pod resumes."""
        self.phase = phase
        fetch = phase is InstallPhase.FETCH
        self.egress = "registry" if fetch else "none"
        self.uses_dependency_cache = fetch
        self.results = ("package-manager", "toolchain") if fetch else ("install-scripts",)
        self.resume_method = "resume_fetch" if fetch else "resume_stage"

    def execute(self, context: Any) -> InstallResult:
        self.enter(InstallPhase.FETCH)
        return self.run_scripts(context, super().execute(context))

    def resume_fetch(self, context: Any, event: dict[str, Any] | None = None, **_: Any) -> InstallResult:
        """A deferred fetch pod finished: on to the scripts."""
        self.enter(InstallPhase.FETCH)
        return self.run_scripts(context, super().resume_stage(context, event))

    def resume_stage(self, context: Any, event: dict[str, Any] | None = None, **_: Any) -> InstallResult:
        """A deferred scripts pod finished; what the fetch found waits in this try's XCom."""
        self.enter(InstallPhase.SCRIPTS)
        fetched = context["ti"].xcom_pull(task_ids=self.task_id, key=FETCHED_XCOM, map_indexes=context["ti"].map_index)
        return install_result(fetched, super().resume_stage(context, event))

    def run_scripts(self, context: Any, fetched: dict[str, Any]) -> InstallResult:
        if self.settings.install_scripts == "none":
            self.log.info("Install scripts are off (setting install_scripts = none): no second phase")
            return install_result(fetched, "none")
        self.enter(InstallPhase.SCRIPTS)
        context["ti"].xcom_push(key=FETCHED_XCOM, value=fetched)  # for a deferred scripts pod's resume
        return install_result(fetched, StageOperator.execute(self, context))

    def pod_stage(self) -> str:
        return "install-fetch" if self.phase is InstallPhase.FETCH else "install"

    def results_dir(self, p: PipelineParameters) -> Path:
        """Each phase its own: what the fetch reported is out of the scripts' reach."""
        directory = super().results_dir(p)
        return directory if self.phase is InstallPhase.FETCH else directory.with_name(directory.name + "-scripts")

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"package-manager-directory": p.package_manager_directory}

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        settings = self.settings
        env = {**settings.install_env, "INSTALL_DIR": str(p.install_dir), "INSTALL_PHASE": self.phase.value,
               "INSTALL_YARN_CODE": "allow" if settings.allow_yarn_repository_code else "refuse"}
        if self.phase is InstallPhase.SCRIPTS:
            return {**env, "INSTALL_SCRIPTS": settings.install_scripts,
                    "INSTALL_SCRIPT_PACKAGES": " ".join(settings.install_script_packages)}
        cache = self.dependency_cache(p)
        return {**env, **({"DEPENDENCY_CACHE": str(cache),
                           "DEPENDENCY_CACHE_MAX_MB": str(settings.dependency_cache_max_mb)} if cache else {})}

    def dependency_cache(self, p: PipelineParameters) -> PurePosixPath | None:
        """Where the fetch sees the shared cache: a partition per platform and Node, or None."""
        from cloudflare_worker_pipeline.fingerprint import node_identity
        from cloudflare_worker_pipeline.modes import ExecutionMode

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
        """The stage's usual view; the fetch also writes the shared cache (the package manager alone
        runs there). The scripts never see it."""
        from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy

        policy = super().sandbox_policy(p)
        cache = self.dependency_cache(p)
        if cache is None or self.phase is not InstallPhase.FETCH:
            return policy
        return SandboxPolicy(writable=(*policy.writable, Path(cache)), home=policy.home, read_only=policy.read_only,
                             egress=policy.egress)

    def egress_policy(self, p: PipelineParameters) -> EgressPolicy | None:
        """The fetch (the package manager and corepack) may reach the registries: ``allowed_registry_hosts``
        and the hosts of the registry URLs in ``install_env``, on their ports. The scripts: nowhere."""
        from cloudflare_worker_pipeline.egress_policies import registry_egress

        return registry_egress(self.settings) if self.phase is InstallPhase.FETCH else None

    def finish(self, results: dict[str, str], context: Any) -> Any:
        from cloudflare_worker_pipeline.provenance import parse_toolchain

        if self.phase is InstallPhase.FETCH:
            return {"package_manager": results["package-manager"], "toolchain": parse_toolchain(results["toolchain"]),
                    "egress": self.stage_egress}
        return results["install-scripts"]


def install_result(fetched: dict[str, Any], install_scripts: Any) -> InstallResult:
    """The task's XCom value: what the fetch found, and which scripts ran."""
    from cloudflare_worker_pipeline.results import InstallResult

    return InstallResult(package_manager=str(fetched["package_manager"]), toolchain=dict(fetched["toolchain"]),
                         install_scripts=str(install_scripts), egress=fetched.get("egress"))


def bun_lockfile(directory: Path) -> bool:
    """Does install.sh pick Bun here? A Bun lockfile and no Yarn or pnpm one."""
    names = {"yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb"}
    present = {name for name in names if (directory / name).is_file()}
    return bool(present & {"bun.lock", "bun.lockb"}) and not present & {"yarn.lock", "pnpm-lock.yaml"}
