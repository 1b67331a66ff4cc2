"""Stage 6: rendering the service's kustomize overlays into a ConfigMap."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, list_build_files, read_build_file
from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
from cloudflare_worker_pipeline.hooks.configmaps import (
    MAX_CONFIGMAP_BYTES,
    ConfigMapTooLargeError,
    build_annotations,
    config_map,
    write_config_map,
)
from cloudflare_worker_pipeline.operators.stage import StageOperator
from cloudflare_worker_pipeline.ownership import ConfigMapOwnedElsewhereError
from cloudflare_worker_pipeline.parameters import PipelineParameters

_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class KustomizeBuildOperator(StageOperator):
    """Render each ``<project-root>/<kustomize-base-directory>/overlays/<name>`` with kustomize.

    The ConfigMap holds ``data[<name>]`` = base64 of the rendered YAML, the format the deploy
    stage reads; with no overlays directory it holds no data. The rendered files are read from
    the workspace on the worker (in the kubernetes mode, the worker mounts the workspace claim).
    """

    script = "kustomize.sh"
    image_setting = "kubectl_image"
    template_fields: Sequence[str] = (*StageOperator.template_fields, "checkout")

    def __init__(self, *, checkout: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkout = checkout

    def _output_dir(self, p: PipelineParameters) -> Path:
        return self.results_dir(p) / "rendered"

    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"project-root": p.project_root,
                "kustomize-base-directory": (PurePosixPath(p.project_root) / p.kustomize_base_directory).as_posix()}

    def sandbox_policy(self, p: PipelineParameters) -> SandboxPolicy:
        """kustomize sees the clone read-only and nothing else of the run; no network, so remote
        resources and bases outside the clone fail with kustomize's own error."""
        home = Path(p.workspace) / ".home-kustomize"
        return SandboxPolicy(writable=(self.results_dir(p), home), home=home,
                             read_only=(*self.host_read_only_paths(), p.checkout_dir))

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        return {"KUSTOMIZE_DIR": str(p.kustomize_dir), "OUTPUT_DIR": str(self._output_dir(p))}

    def finish(self, results: dict[str, str]) -> dict[str, Any]:
        p = self.pipeline
        data: dict[str, str] = {}
        workspace = Path(p.workspace)
        rendered_dir = self._output_dir(p).relative_to(workspace)
        for file_name in list_build_files(workspace, rendered_dir):
            name = file_name.removesuffix(".yaml")
            if not file_name.endswith(".yaml"):
                continue
            if not _CONFIGMAP_KEY.match(name):
                raise AirflowFailException(
                    f"ERROR: overlay directory name {name!r} is not a valid ConfigMap key (letters, digits, '-', '_', '.')"
                )
            try:  # written by a stage that ran beside the repository's code: read it unfollowed
                rendered = read_build_file(workspace, rendered_dir / file_name, max_bytes=MAX_CONFIGMAP_BYTES)
            except UnsafeBuildFileError as error:
                raise AirflowFailException(f"ERROR: rendered overlay {name}: {error}") from None
            data[name] = base64.b64encode(rendered).decode()
        try:
            annotations = build_annotations(commit=self.checkout["commit_sha"], git_url=p.git_url, dag_id=self.dag_id,
                                            run_id=self._run_id, owner=p.owner)
            manifest = config_map(p.kustomize_manifests_config_map_name, self.settings.namespace, p.labels, data,
                                  annotations)
            return {"overlays": sorted(data), "config_map": write_config_map(manifest, self.settings, self.log)}
        except (ConfigMapTooLargeError, ConfigMapOwnedElsewhereError) as error:
            raise AirflowFailException(f"ERROR: {error}") from None
