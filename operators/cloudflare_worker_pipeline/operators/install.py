"""Stage 2: dependency installation."""

from __future__ import annotations

from typing import Any

from cloudflare_worker_pipeline.operators.stage import StageOperator
from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.results import InstallResult, StoredBuild


class InstallDependenciesOperator(StageOperator):
    """Install dependencies with the package manager the lockfile names, frozen.

    Runs in ``package-manager-directory`` (the project root unless set; ``.`` for a monorepo's
    workspace root). The ``install_env`` setting adds registry or corepack configuration.
    """

    script = "install.sh"
    egress = "registry"
    template_fields = (*StageOperator.template_fields, "checkout")
    results = ("package-manager",)

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"package-manager-directory": p.package_manager_directory}

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        return {**self.settings.install_env, "INSTALL_DIR": str(p.install_dir)}

    def __init__(self, *, checkout: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkout = checkout

    def skipped_result(self, stored: StoredBuild) -> InstallResult:
        return InstallResult(package_manager="", skipped=True)

    def finish(self, results: dict[str, str], context: Any) -> InstallResult:
        return InstallResult(package_manager=results["package-manager"], skipped=False)
