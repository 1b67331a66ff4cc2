"""The TypeScript type check, run beside the bundle (a future enhancement of the spec)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudflare_worker_pipeline.operators.node_stage import NodeStage

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
    from cloudflare_worker_pipeline.parameters import PipelineParameters
    from cloudflare_worker_pipeline.results import TypeCheckResult



class TypeCheckOperator(NodeStage):
    """Run the project's own ``tsc --noEmit`` when it has a ``tsconfig.json`` (``typescript-check``:
    ``auto``, ``on`` or ``off``); type errors fail the task with the compiler's messages, and the
    upload waits for it. Without TypeScript installed ``auto`` checks nothing and says so.
    """

    script = "typecheck.sh"
    results = ("typescript",)

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"project-root": p.project_root, "package-manager-directory": p.package_manager_directory}

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        return {**self.settings.install_env, "PROJECT_DIR": str(p.project_dir), "INSTALL_DIR": str(p.install_dir),
                "TYPESCRIPT_CHECK": p.typescript_check}

    def sandbox_policy(self, p: PipelineParameters) -> SandboxPolicy:
        """The compiler reads the clone and writes nothing in it; no network."""
        from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy

        home = Path(p.workspace) / ".home-typecheck"
        return SandboxPolicy(writable=(self.results_dir(p), home), home=home,
                             read_only=(*self.host_read_only_paths(), p.checkout_dir))

    def finish(self, results: dict[str, str], context: Any) -> TypeCheckResult:
        from cloudflare_worker_pipeline.results import TypeCheckResult

        return TypeCheckResult(typescript=results["typescript"])
