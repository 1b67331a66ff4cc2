"""Stage 3: bundling the worker with Wrangler."""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline import metrics
from cloudflare_worker_pipeline.operators.stage import StageOperator
from cloudflare_worker_pipeline.parameters import PipelineParameters
from cloudflare_worker_pipeline.results import BundleResult

_BUNDLE_PATH = re.compile(r"^dist/[A-Za-z0-9._-]+\.m?js$")


class BundleWorkerOperator(StageOperator):
    """Run the project's own ``wrangler deploy --dry-run`` and return the bundle's facts.

    Returns ``bundle_path`` (relative to the project root), ``sha256`` (hex) and ``size_bytes``,
    the results the spec's Tekton task recorded. A bundle over the ``max_bundle_bytes`` setting
    fails here, before anything is uploaded.
    """

    script = "bundle.sh"
    results = ("bundle-path", "content-hash", "size-bytes")

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"project-root": p.project_root, "package-manager-directory": p.package_manager_directory}

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        return {**self.settings.install_env, "PROJECT_DIR": str(p.project_dir), "INSTALL_DIR": str(p.install_dir)}

    def finish(self, results: dict[str, str], context: Any) -> BundleResult:
        path, size = results["bundle-path"], int(results["size-bytes"])
        if not _BUNDLE_PATH.match(path):
            raise AirflowFailException(f"ERROR: the bundle stage reported an unexpected bundle path {path!r}")
        limit = self.settings.max_bundle_bytes
        if size > limit:
            raise AirflowFailException(
                f"ERROR: Bundle too large: {path} is {size} bytes, over the limit of {limit} bytes (setting max_bundle_bytes)"
            )
        metrics.bundle_size(self.dag_id, size)
        return BundleResult(bundle_path=path, sha256=results["content-hash"], size_bytes=size)
