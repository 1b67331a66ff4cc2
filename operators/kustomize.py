"""Stage 6: rendering the service's kustomize overlays into a ConfigMap."""

from __future__ import annotations

import base64
import re
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from operators.configmaps import ConfigMapTooLargeError, config_map, write_config_map
from operators.stage import StageOperator

_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class KustomizeBuildOperator(StageOperator):
    """Render each ``<project-root>/<kustomize-base-directory>/overlays/<name>`` with kustomize.

    The ConfigMap holds ``data[<name>]`` = base64 of the rendered YAML, the format the deploy
    stage reads; with no overlays directory it holds no data.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        p = self.pipeline
        output_dir = self.results_dir() / "rendered"
        self.run_script("kustomize.sh", {"KUSTOMIZE_DIR": str(p.kustomize_dir), "OUTPUT_DIR": str(output_dir)})
        data: dict[str, str] = {}
        for rendered in sorted(output_dir.glob("*.yaml")):
            name = rendered.stem
            if not _CONFIGMAP_KEY.match(name):
                raise AirflowFailException(
                    f"ERROR: overlay directory name {name!r} is not a valid ConfigMap key (letters, digits, '-', '_', '.')"
                )
            data[name] = base64.b64encode(rendered.read_bytes()).decode()
        try:
            manifest = config_map(p.kustomize_manifests_config_map_name, self.settings.namespace, p.labels, data)
        except ConfigMapTooLargeError as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        return {"overlays": sorted(data), "config_map": write_config_map(manifest, self.settings, self.log)}
