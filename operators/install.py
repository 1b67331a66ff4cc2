"""Stage 2: dependency installation."""

from __future__ import annotations

from typing import Any

from operators.stage import StageOperator


class InstallDependenciesOperator(StageOperator):
    """Install dependencies with the package manager the lockfile names, frozen.

    Runs in ``package-manager-directory`` (the project root unless set; ``.`` for a monorepo's
    workspace root). The ``install_env`` setting adds registry or corepack configuration.
    """

    def execute(self, context: Any) -> dict[str, str]:
        p = self.pipeline
        env = {**self.settings.install_env, "INSTALL_DIR": str(p.install_dir)}
        results = self.run_script("install.sh", env)
        return {"package_manager": results["package-manager"]}
