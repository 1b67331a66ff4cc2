"""Deployment settings: what an operator of the platform configures once, not per run.

They live in Airflow's configuration, section ``[cloudflare_worker_pipeline]``, so each can be set
in ``airflow.cfg`` or as ``AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__<KEY>`` in the environment. They
are read when a task runs, never when the DAG file is parsed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTION = "cloudflare_worker_pipeline"

DEFAULT_NAMESPACE = "planton-cloud-pipelines"
DEFAULT_R2_CONN_ID = "r2_default"
DEFAULT_KUBERNETES_CONN_ID = "kubernetes_default"
EXECUTION_MODES = ("local", "kubernetes")
SANDBOX_MODES = ("bubblewrap", "none")
DEFAULT_ALLOWED_R2_ENDPOINTS = ("*.r2.cloudflarestorage.com",)
DEFAULT_ALLOWED_GIT_HOSTS = ("*",)


class SettingsError(ValueError):
    """A deployment setting has a value the pipeline cannot use."""


DEFAULT_POD_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"},
    "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "4Gi"},
}


@dataclass(frozen=True)
class PodSettings:
    """How stage pods look in the ``kubernetes`` execution mode.

    :param node_image: install and bundle (the spec's image; Wrangler 4.87+ needs Node 22).
    :param git_image: checkout; needs ``git`` and ``sh``.
    :param kubectl_image: kustomize_build; needs ``kubectl`` and ``sh``.
    :param service_account: the pods' service account ("" = the namespace's default). Stage pods
        get no service-account token either way: none of them talks to the API.
    :param resources: container requests and limits.
    :param run_as_user: the non-root UID (and GID, fsGroup) pods run as; 1000 is ``node`` in
        node:20-alpine.
    :param workspace_claim: an existing claim holding every run's workspace under
        ``<dag_id>/<run>`` (mounted with that sub-path), or "" for a claim created per run.
    """

    node_image: str = "node:20-alpine"
    git_image: str = "alpine/git:v2.47.2"
    kubectl_image: str = "alpine/k8s:1.32.4"
    service_account: str = ""
    resources: dict[str, dict[str, str]] = field(default_factory=lambda: DEFAULT_POD_RESOURCES)
    image_pull_secrets: tuple[str, ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    run_as_user: int = 1000
    startup_timeout_seconds: int = 300
    keep_failed_pods: bool = False
    deferrable: bool = False
    workspace_claim: str = ""
    workspace_storage_class: str = ""
    workspace_size: str = "1Gi"
    workspace_access_mode: str = "ReadWriteOnce"
    workspace_mount_path: str = "/workspace"


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
    :param execution_mode: where stage scripts run: ``local`` runs them as processes on the worker,
        ``kubernetes`` in pods (see :class:`PodSettings`).
    :param stage_timeout_seconds: the longest any stage script may run.
    :param git_conn_id: Airflow connection with the HTTPS credentials of private repositories
        (login: user name, password: token); used by the local mode when it exists.
    :param git_credentials_secret: in the kubernetes mode, a Secret (keys ``username``,
        ``password``) the checkout pod reads the same credentials from, so no value is in its spec.
    :param git_submodules: fetch the repository's submodules (off: a build sees only its own code).
    :param max_bundle_bytes: bundles larger than this fail before upload (Workers' paid-plan
        limit on a compressed script is 10 MiB; the spec's future enhancement names 10 MB).
    :param sandbox: ``bubblewrap`` runs every local-mode stage script in a bubblewrap sandbox (see
        ``operators.sandbox``); ``none`` runs them as the worker's user, for trusted repositories only.
    :param sandbox_read_only_paths: further host paths the sandbox shows read-only, e.g. a Node
        installed outside ``/usr``.
    :param allowed_r2_endpoints: host patterns (``fnmatch``), IP addresses or networks (CIDR) an
        ``r2-endpoint-url`` may name. A host resolving to loopback, private or link-local space is
        refused unless an address or network entry covers that address.
    :param allowed_git_hosts: the same for ``git-url`` hosts; any public host by default.
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
    pods: PodSettings = field(default_factory=PodSettings)
    git_conn_id: str = "git_default"
    git_credentials_secret: str = ""
    git_submodules: bool = False
    sandbox: str = "bubblewrap"
    sandbox_read_only_paths: tuple[Path, ...] = ()
    allowed_r2_endpoints: tuple[str, ...] = DEFAULT_ALLOWED_R2_ENDPOINTS
    allowed_git_hosts: tuple[str, ...] = DEFAULT_ALLOWED_GIT_HOSTS

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
            pods=_pod_settings(get),
            git_conn_id=get("git_conn_id", defaults.git_conn_id),
            git_credentials_secret=get("git_credentials_secret", ""),
            git_submodules=_parse_bool("git_submodules", get("git_submodules", False)),
            sandbox=get("sandbox", defaults.sandbox),
            sandbox_read_only_paths=tuple(Path(p) for p in _parse_list(get("sandbox_read_only_paths", ""))),
            allowed_r2_endpoints=_parse_list(get("allowed_r2_endpoints", ",".join(DEFAULT_ALLOWED_R2_ENDPOINTS))),
            allowed_git_hosts=_parse_list(get("allowed_git_hosts", ",".join(DEFAULT_ALLOWED_GIT_HOSTS))),
        )
        for key, value, allowed in (("execution_mode", settings.execution_mode, EXECUTION_MODES),
                                    ("sandbox", settings.sandbox, SANDBOX_MODES)):
            if value not in allowed:
                raise SettingsError(f"[{SECTION}] {key}: expected one of {', '.join(allowed)}, got {value!r}")
        for path in settings.sandbox_read_only_paths:
            if not path.is_absolute():
                raise SettingsError(f"[{SECTION}] sandbox_read_only_paths: expected absolute paths, got {str(path)!r}")
        return settings


def _pod_settings(get: Callable[[str, object], str]) -> PodSettings:
    d = PodSettings()
    access_mode = get("workspace_access_mode", d.workspace_access_mode)
    if access_mode not in ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"):
        raise SettingsError(f"[{SECTION}] workspace_access_mode: expected ReadWriteOnce, ReadWriteMany or ReadWriteOncePod, got {access_mode!r}")
    resources = _parse_json("pod_resources", get("pod_resources", json.dumps(d.resources)), dict)
    tolerations = _parse_json("pod_tolerations", get("pod_tolerations", "[]"), list)
    return PodSettings(
        node_image=get("node_image", d.node_image),
        git_image=get("git_image", d.git_image),
        kubectl_image=get("kubectl_image", d.kubectl_image),
        service_account=get("pod_service_account", d.service_account),
        resources=resources,
        image_pull_secrets=tuple(s.strip() for s in get("image_pull_secrets", "").split(",") if s.strip()),
        node_selector=_parse_env("pod_node_selector", get("pod_node_selector", "{}")),
        tolerations=tuple(tolerations),
        run_as_user=_parse_int("pod_run_as_user", get("pod_run_as_user", d.run_as_user)),
        startup_timeout_seconds=_parse_int("pod_startup_timeout_seconds", get("pod_startup_timeout_seconds", d.startup_timeout_seconds)),
        keep_failed_pods=_parse_bool("keep_failed_pods", get("keep_failed_pods", False)),
        deferrable=_parse_bool("deferrable", get("deferrable", False)),
        workspace_claim=get("workspace_claim", ""),
        workspace_storage_class=get("workspace_storage_class", ""),
        workspace_size=get("workspace_size", d.workspace_size),
        workspace_access_mode=access_mode,
    )


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_json(key: str, raw: str, kind: type) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingsError(f"[{SECTION}] {key}: expected JSON: {error}") from None
    if not isinstance(value, kind):
        raise SettingsError(f"[{SECTION}] {key}: expected a JSON {'object' if kind is dict else 'list'}")
    return value


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
