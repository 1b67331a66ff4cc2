"""Deployment settings: what an operator of the platform configures once, not per run.

They live in Airflow's configuration, section ``[cloudflare_worker_pipeline]``, so each can be set
in ``airflow.cfg`` or as ``AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__<KEY>`` in the environment. They
are read when a task runs, never when the DAG file is parsed.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SECTION = "cloudflare_worker_pipeline"

DEFAULT_NAMESPACE = "planton-cloud-pipelines"
DEFAULT_R2_CONN_ID = "r2_default"
DEFAULT_KUBERNETES_CONN_ID = "kubernetes_default"
EXECUTION_MODES = ("local",)


class SettingsError(ValueError):
    """A deployment setting has a value the pipeline cannot use."""


@dataclass(frozen=True)
class PipelineSettings:
    """Settings shared by every run.

    :param namespace: namespace of both ConfigMaps.
    :param r2_conn_id: Airflow connection (type ``aws``) holding the R2 access key pair.
    :param kubernetes_conn_id: Airflow connection (type ``kubernetes``) for the ConfigMaps; when
        it does not exist the ConfigMaps are written as manifest files to ``manifest_dir``.
    :param manifest_dir: where ConfigMap manifests go without a Kubernetes connection.
    :param workspace_root: parent of the per-run workspaces.
    :param allow_file_git_urls: accept ``file://`` and plain-path ``git-url`` values (tests, demos).
    :param install_env: extra environment for the install and bundle steps, e.g. a registry
        mirror or corepack settings. Values are plain configuration, never secrets.
    :param execution_mode: where stage scripts run; ``local`` runs them as processes.
    :param stage_timeout_seconds: the longest any stage script may run.
    :param max_bundle_bytes: bundles larger than this fail before upload (Workers' paid-plan
        limit on a compressed script is 10 MiB; the spec's future enhancement names 10 MB).
    """

    namespace: str = DEFAULT_NAMESPACE
    r2_conn_id: str = DEFAULT_R2_CONN_ID
    kubernetes_conn_id: str = DEFAULT_KUBERNETES_CONN_ID
    manifest_dir: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "cloudflare-worker-pipeline" / "configmaps"
    )
    workspace_root: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "cloudflare-worker-pipeline" / "workspaces"
    )
    allow_file_git_urls: bool = False
    install_env: dict[str, str] = field(default_factory=dict)
    execution_mode: str = "local"
    stage_timeout_seconds: int = 900
    max_bundle_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_airflow_config(cls) -> PipelineSettings:
        """Read the settings from Airflow's configuration, falling back to the defaults."""
        from airflow.sdk.configuration import conf

        defaults = cls()

        def get(key: str, default: object) -> str:
            return str(conf.get(SECTION, key, fallback=str(default)))

        settings = cls(
            namespace=get("namespace", defaults.namespace),
            r2_conn_id=get("r2_conn_id", defaults.r2_conn_id),
            kubernetes_conn_id=get("kubernetes_conn_id", defaults.kubernetes_conn_id),
            manifest_dir=Path(get("manifest_dir", defaults.manifest_dir)),
            workspace_root=Path(get("workspace_root", defaults.workspace_root)),
            allow_file_git_urls=_parse_bool("allow_file_git_urls", get("allow_file_git_urls", False)),
            install_env=_parse_env("install_env", get("install_env", "{}")),
            execution_mode=get("execution_mode", defaults.execution_mode),
            stage_timeout_seconds=_parse_int("stage_timeout_seconds", get("stage_timeout_seconds", 900)),
            max_bundle_bytes=_parse_int("max_bundle_bytes", get("max_bundle_bytes", defaults.max_bundle_bytes)),
        )
        if settings.execution_mode not in EXECUTION_MODES:
            raise SettingsError(
                f"[{SECTION}] execution_mode: expected one of {', '.join(EXECUTION_MODES)}, "
                f"got {settings.execution_mode!r}"
            )
        return settings


def _parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise SettingsError(f"[{SECTION}] {key}: expected true or false, got {raw!r}")


def _parse_int(key: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"[{SECTION}] {key}: expected a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"[{SECTION}] {key}: expected a positive number, got {value}")
    return value


def _parse_env(key: str, raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as error:
        raise SettingsError(f"[{SECTION}] {key}: expected a JSON object of strings: {error}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SettingsError(f'[{SECTION}] {key}: expected a JSON object of strings, like {{"NAME": "value"}}')
    return value
