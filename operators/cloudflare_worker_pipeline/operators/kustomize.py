"""Stage 6: rendering the service's kustomize overlays (published by the publish step)."""

from __future__ import annotations

import base64
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.operators.stage import StageOperator

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy
    from cloudflare_worker_pipeline.parameters import PipelineParameters
    from cloudflare_worker_pipeline.results import KustomizeResult


_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def rendered_overlays_dir(p: PipelineParameters) -> Path:
    """Where the kustomize stage writes ``<overlay>.yaml`` (outside any results directory)."""
    return Path(p.workspace) / "rendered-overlays"


def read_rendered_overlays(p: PipelineParameters) -> dict[str, str]:
    """The manifests ConfigMap's data: overlay name -> base64 of its rendered YAML.

    Read unfollowed and capped: a stage that ran beside the repository's code wrote them.
    Raises :class:`UnsafeBuildFileError`, :class:`ConfigMapTooLargeError` or ``ValueError`` (a
    name that is not a ConfigMap key).
    """
    from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, list_build_files, read_build_file
    from cloudflare_worker_pipeline.config_maps import MAX_CONFIGMAP_BYTES, ConfigMapTooLargeError

    workspace = Path(p.workspace)
    rendered = rendered_overlays_dir(p).relative_to(workspace)
    data: dict[str, str] = {}
    for file_name in list_build_files(workspace, rendered):
        if not file_name.endswith(".yaml"):
            continue
        name = file_name.removesuffix(".yaml")
        if not _CONFIGMAP_KEY.match(name):
            raise ValueError(f"overlay directory name {name!r} is not a valid ConfigMap key (letters, digits, '-', '_', '.')")
        try:
            data[name] = base64.b64encode(read_build_file(workspace, rendered / file_name,
                                                          max_bytes=MAX_CONFIGMAP_BYTES)).decode()
        except UnsafeBuildFileError as error:
            raise UnsafeBuildFileError(f"rendered overlay {name}: {error}") from None
    size = sum(len(key) + len(value) for key, value in data.items())
    if size > MAX_CONFIGMAP_BYTES:
        raise ConfigMapTooLargeError(
            f"ConfigMap {p.kustomize_manifests_config_map_name} would hold {size} bytes of data, over the limit of "
            f"{MAX_CONFIGMAP_BYTES} bytes")
    return data


class KustomizeBuildOperator(StageOperator):
    """Render each ``<project-root>/<kustomize-base-directory>/overlays/<name>`` with kustomize.

    The publish step stores them as ``data[<name>]`` = base64 of the rendered YAML, the format
    the deploy stage reads; with no overlays directory there is no data. Names and sizes are
    checked here, so a bad overlay fails this branch before anything is published.
    """

    script = "kustomize.sh"
    image_setting = "kubectl_image"
    def confined_directories(self, p: PipelineParameters) -> dict[str, str]:
        return {"project-root": p.project_root,
                "kustomize-base-directory": (PurePosixPath(p.project_root) / p.kustomize_base_directory).as_posix()}

    def sandbox_policy(self, p: PipelineParameters) -> SandboxPolicy:
        """kustomize sees the clone read-only and nothing else of the run; no network, so remote
        resources and bases outside the clone fail with kustomize's own error."""
        from cloudflare_worker_pipeline.execution.sandbox import SandboxPolicy

        home = Path(p.workspace) / ".home-kustomize"
        return SandboxPolicy(writable=(self.results_dir(p), rendered_overlays_dir(p), home), home=home,
                             read_only=(*self.host_read_only_paths(), p.checkout_dir))

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        return {"KUSTOMIZE_DIR": str(p.kustomize_dir), "OUTPUT_DIR": str(rendered_overlays_dir(p))}

    def finish(self, results: dict[str, str], context: Any) -> KustomizeResult:
        from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError
        from cloudflare_worker_pipeline.results import KustomizeResult

        try:
            return KustomizeResult(overlays=sorted(read_rendered_overlays(self.pipeline)))
        except (ValueError, UnsafeBuildFileError) as error:
            raise AirflowFailException(f"ERROR: {error}") from None
