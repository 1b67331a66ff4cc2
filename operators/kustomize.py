"""Stage 6: rendering the service's kustomize overlays into a ConfigMap."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from operators.configmaps import ConfigMapTooLargeError, build_annotations, config_map, write_config_map
from operators.parameters import PipelineParameters
from operators.stage import StageOperator

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
        return Path(p.workspace) / "results" / self.task_id / "rendered"

    def script_env(self, p: PipelineParameters) -> dict[str, str]:
        return {"KUSTOMIZE_DIR": str(p.kustomize_dir), "OUTPUT_DIR": str(self._output_dir(p))}

    def finish(self, results: dict[str, str]) -> dict[str, Any]:
        p = self.pipeline
        data: dict[str, str] = {}
        for rendered in sorted(self._output_dir(p).glob("*.yaml")):
            name = rendered.stem
            if not _CONFIGMAP_KEY.match(name):
                raise AirflowFailException(
                    f"ERROR: overlay directory name {name!r} is not a valid ConfigMap key (letters, digits, '-', '_', '.')"
                )
            data[name] = base64.b64encode(rendered.read_bytes()).decode()
        try:
            annotations = build_annotations(commit=self.checkout["commit_sha"], git_url=p.git_url, dag_id=self.dag_id,
                                            run_id=self._run_id)
            manifest = config_map(p.kustomize_manifests_config_map_name, self.settings.namespace, p.labels, data,
                                  annotations)
        except ConfigMapTooLargeError as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        return {"overlays": sorted(data), "config_map": write_config_map(manifest, self.settings, self.log)}
