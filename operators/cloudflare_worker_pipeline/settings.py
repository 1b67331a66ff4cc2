"""Deployment settings: what an operator of the platform configures once, not per run.

They live in Airflow's configuration, section ``[cloudflare_worker_pipeline]``, so each can be set
in ``airflow.cfg`` or as ``AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__<KEY>`` in the environment. They
are read when a task runs, never when the DAG file is parsed.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk.exceptions import AirflowConfigException

from cloudflare_worker_pipeline.allowed_hosts import bad_endpoint_entries
from cloudflare_worker_pipeline.execution.limits import MIB, StageLimits
from cloudflare_worker_pipeline.get_provider_info import DEFAULTS, SECTION
from cloudflare_worker_pipeline.modes import ConfigMapDestination, ExecutionMode, WorkspaceKind
from cloudflare_worker_pipeline.parameter_urls import SAFE_GIT_SCHEMES

SANDBOX_MODES = ("bubblewrap", "none")
INSTALL_SCRIPT_MODES = ("run", "allowlist", "none")
# A package name as npm accepts it (scoped or not): the install script allowlist reaches a shell.
PACKAGE_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod")


class SettingsError(ValueError):
    """A deployment setting has a value the pipeline cannot use."""


@dataclass(frozen=True)
class PodSettings:
    """How stage pods look in the ``kubernetes`` execution mode.

    :param node_image: install and bundle (the spec's image; Wrangler 4.87+ needs Node 22).
    :param node_image_template: the Node image when a project names its version (``node-version``,
        ``.nvmrc``, ``.node-version``): ``{version}`` is replaced by it.
    :param bun_image: install, for a project with a Bun lockfile (``sh``, ``node`` and ``bun``);
        "" uses the Node image.
    :param git_image: checkout; needs ``git`` and ``sh``.
    :param kubectl_image: kustomize_build; needs ``kubectl`` and ``sh``.
    :param service_account: the pods' service account ("" = the namespace's default). Stage pods
        get no service-account token either way: none of them talks to the API.
    :param resources: container requests and limits.
    :param run_as_user: the non-root UID (and GID, fsGroup) pods run as; 1000 is ``node`` in
        node:20-alpine.
    :param registry_proxy: the egress proxy (``http://host:port``) install's fetch pods go out
        through, or "" for straight out; ``git_proxy`` the same for checkout pods.
    :param workspace_claim: an existing claim holding every run's workspace under
        ``<dag_id>/<run>`` (mounted with that sub-path), or "" for a claim created per run.
    """

    node_image: str
    node_image_template: str
    bun_image: str
    git_image: str
    kubectl_image: str
    service_account: str
    resources: dict[str, dict[str, str]]
    image_pull_secrets: tuple[str, ...]
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, Any], ...]
    run_as_user: int
    startup_timeout_seconds: int
    keep_failed_pods: bool
    deferrable: bool
    workspace_claim: str
    workspace_storage_class: str
    workspace_size: str
    workspace_access_mode: str
    registry_proxy: str = ""  # the egress proxy of install's fetch pods: http://host:port, or ""
    git_proxy: str = ""  # the same for checkout pods
    workspace_mount_path: str = "/workspace"  # inside stage pods: not a setting
    cache_mount_path: str = "/cache"  # the shared dependency cache, in install pods


@dataclass(frozen=True)
class PipelineSettings:
    """Settings shared by every run.

    :param namespace: namespace of both ConfigMaps.
    :param r2_conn_id: Airflow connection (type ``aws``) holding the R2 access key pair.
    :param kubernetes_conn_id: Airflow connection (type ``kubernetes``) for the ConfigMaps (with
        ``configmap_destination = cluster``), the pods and claims (the kubernetes mode).
    :param configmap_destination: ``cluster`` writes the ConfigMaps through the API; ``files``
        writes them as manifests to ``manifest_dir``. Never inferred: a missing connection with
        ``cluster`` fails the run before anything is built.
    :param manifest_dir: where ConfigMap manifests go with ``configmap_destination = files``.
    :param workspace_root: parent of the per-run workspaces.
    :param allow_file_git_urls: accept ``file://`` and plain-path ``git-url`` values (tests, demos).
    :param allow_http_git_urls: accept plain ``http://`` ``git-url`` values (internal git servers).
    :param install_env: extra environment for the install and bundle steps, e.g. a registry
        mirror or corepack settings. Values are plain configuration, never secrets.
    :param execution_mode: where stage scripts run: ``local`` runs them as processes on the worker,
        ``kubernetes`` in pods (see :class:`PodSettings`).
    :param stage_timeout_seconds: the longest any stage script may run.
    :param git_conn_id: Airflow connection with the HTTPS credentials of private repositories
        (login: user name, password: token); used by the local mode when it exists.
    :param git_known_hosts: a known_hosts file with the SSH git servers' host keys, or None.
    :param git_credentials_secret: in the kubernetes mode, a Secret (keys ``username``,
        ``password``) the checkout pod reads the same credentials from, so no value is in its spec.
    :param git_submodules: fetch the repository's submodules (off: a build sees only its own code).
    :param max_bundle_bytes: the deployment's ceiling: a bundle (or any file beside it) larger than
        this fails before upload, and no run's ``bundle-size-limit-bytes`` may exceed it (64 MiB,
        Cloudflare's largest limit; each run's own limit defaults to the spec's 10 MiB).
    :param sandbox: ``bubblewrap`` runs every local-mode stage script in a bubblewrap sandbox (see
        ``cloudflare_worker_pipeline.execution.sandbox``); ``none`` runs them as the worker's user, for trusted repositories only.
    :param sandbox_read_only_paths: further host paths the sandbox shows read-only, e.g. a Node
        installed outside ``/usr``.
    :param stage_limits: what one local-mode stage may use: processes, memory, its sandbox's ``/tmp``.
    :param allowed_r2_endpoints: host patterns (``fnmatch``), IP addresses or networks (CIDR) an
        ``r2-endpoint-url`` may name, each with its port (``:9000``, ``:*``; 443 when absent). A
        host resolving to loopback, private or link-local space is refused unless an address or
        network entry covers that address.
    :param allowed_git_hosts: the same for ``git-url`` hosts, without ports (the egress policy
        names git's); any public host by default.
    :param allowed_registry_hosts: the hosts install may reach through the egress proxy, beside the
        registry URLs' hosts in ``install_env``.
    :param install_scripts, install_script_packages: which install scripts run after the fetch, with
        no network: ``run`` (all), ``allowlist`` (the packages listed) or ``none``.
    :param egress_upstream_proxy: the network's own HTTP proxy the egress proxies leave through.
    :param provenance_signing_conn_id, allow_unsigned_provenance: the connection holding the key
        that signs each build's provenance, and whether a deployment without it may store it unsigned.
    :param adopt_unowned_objects: whether a run may replace an object without owner metadata.
    :param tenants: the tenant map (inline JSON or a file's path), read by validation with
        :func:`cloudflare_worker_pipeline.tenants.load_tenants`; "" for a single tenant.
    :param allow_build_command: whether a run may pass ``build-command`` (code of the run's choosing).
    :param allow_yarn_repository_code: load Yarn plugins and run a ``yarnPath`` release, in the
        fetch (registries only, through the egress proxy) and the scripts (offline); off refuses
        plugins and ignores ``yarnPath``.
    :param dependency_cache_dir, dependency_cache_claim: the shared dependency cache (local mode: a
        directory, None for none; kubernetes mode: a claim, empty for none), and its quota per partition.
    :param services_file: the YAML file of services rebuilt on a schedule, one DAG each; None for none.
    :param dag_owner, pool, max_active_runs, stage_retries, failure_callback: what the DAGs are
        built with (see :func:`cloudflare_worker_pipeline.pipeline.pipeline_dag`).
    """

    namespace: str
    r2_conn_id: str
    kubernetes_conn_id: str
    configmap_destination: ConfigMapDestination
    manifest_dir: Path
    workspace_root: Path
    allow_file_git_urls: bool
    allow_http_git_urls: bool
    install_env: dict[str, str]
    execution_mode: ExecutionMode
    stage_timeout_seconds: int
    max_bundle_bytes: int
    pods: PodSettings
    git_conn_id: str
    git_credentials_secret: str
    git_known_hosts: Path | None
    git_submodules: bool
    sandbox: str
    sandbox_read_only_paths: tuple[Path, ...]
    stage_limits: StageLimits
    allowed_r2_endpoints: tuple[str, ...]
    allowed_git_hosts: tuple[str, ...]
    allowed_registry_hosts: tuple[str, ...]
    install_scripts: str
    install_script_packages: tuple[str, ...]
    allow_yarn_repository_code: bool
    allow_build_command: bool
    adopt_unowned_objects: bool
    tenants: str
    provenance_signing_conn_id: str
    allow_unsigned_provenance: bool
    egress_upstream_proxy: str = field(repr=False)  # may hold the upstream's credentials
    services_file: Path | None
    dag_owner: str
    pool: str
    max_active_runs: int
    stage_retries: dict[str, int]
    failure_callback: str
    dependency_cache_dir: Path | None
    dependency_cache_claim: str
    dependency_cache_max_mb: int

    @property
    def git_url_schemes(self) -> tuple[str, ...]:
        """The schemes a ``git-url`` may use here: https, ssh, git, and file or http where allowed."""
        return (*SAFE_GIT_SCHEMES, *(("file",) if self.allow_file_git_urls else ()),
                *(("http",) if self.allow_http_git_urls else ()))

    @property
    def workspace_kind(self) -> WorkspaceKind:
        """What holds a run's workspace, decided here and nowhere else."""
        if self.execution_mode is ExecutionMode.LOCAL:
            return WorkspaceKind.LOCAL_DIRECTORY
        return WorkspaceKind.SHARED_CLAIM if self.pods.workspace_claim else WorkspaceKind.RUN_CLAIM

    @classmethod
    def from_airflow_config(cls) -> PipelineSettings:
        """Read the settings with Airflow's typed getters; defaults come from ``get_provider_info``."""
        read = _Reader()
        temp = Path(tempfile.gettempdir()) / "cloudflare-worker-pipeline"
        settings = cls(
            namespace=read.string("namespace"),
            r2_conn_id=read.string("r2_conn_id"),
            kubernetes_conn_id=read.string("kubernetes_conn_id"),
            configmap_destination=ConfigMapDestination(read.choice("configmap_destination",
                                                                   tuple(d.value for d in ConfigMapDestination))),
            manifest_dir=Path(read.string("manifest_dir") or temp / "configmaps"),
            workspace_root=Path(read.string("workspace_root") or temp / "workspaces"),
            allow_file_git_urls=read.boolean("allow_file_git_urls"),
            allow_http_git_urls=read.boolean("allow_http_git_urls"),
            install_env=read.string_map("install_env"),
            execution_mode=ExecutionMode(read.choice("execution_mode", tuple(m.value for m in ExecutionMode))),
            stage_timeout_seconds=read.positive("stage_timeout_seconds"),
            max_bundle_bytes=read.positive("max_bundle_bytes"),
            pods=PodSettings(
                node_image=read.string("node_image"),
                node_image_template=read.template("node_image_template", "version"),
                bun_image=read.string("bun_image"),
                git_image=read.string("git_image"),
                kubectl_image=read.string("kubectl_image"),
                service_account=read.string("pod_service_account"),
                resources=read.json("pod_resources", dict),
                image_pull_secrets=read.items("image_pull_secrets"),
                node_selector=read.string_map("pod_node_selector"),
                tolerations=tuple(read.json("pod_tolerations", list)),
                run_as_user=read.positive("pod_run_as_user"),
                startup_timeout_seconds=read.positive("pod_startup_timeout_seconds"),
                keep_failed_pods=read.boolean("keep_failed_pods"),
                deferrable=read.boolean("deferrable"),
                workspace_claim=read.string("workspace_claim"),
                workspace_storage_class=read.string("workspace_storage_class"),
                workspace_size=read.string("workspace_size"),
                workspace_access_mode=read.choice("workspace_access_mode", ACCESS_MODES),
                registry_proxy=read.proxy_url("pod_registry_proxy"),
                git_proxy=read.proxy_url("pod_git_proxy"),
            ),
            git_conn_id=read.string("git_conn_id"),
            git_credentials_secret=read.string("git_credentials_secret"),
            git_known_hosts=Path(read.string("git_known_hosts")) if read.string("git_known_hosts").strip() else None,
            git_submodules=read.boolean("git_submodules"),
            sandbox=read.choice("sandbox", SANDBOX_MODES),
            sandbox_read_only_paths=tuple(Path(p) for p in read.items("sandbox_read_only_paths")),
            stage_limits=StageLimits(max_processes=read.positive("stage_max_processes"),
                                     memory_bytes=read.positive("stage_memory_mb") * MIB,
                                     tmp_bytes=read.positive("sandbox_tmp_size_mb") * MIB,
                                     workspace_bytes=read.positive("workspace_max_mb") * MIB),
            allowed_r2_endpoints=read.items("allowed_r2_endpoints"),
            allowed_git_hosts=read.items("allowed_git_hosts"),
            allowed_registry_hosts=read.items("allowed_registry_hosts"),
            install_scripts=read.choice("install_scripts", INSTALL_SCRIPT_MODES),
            install_script_packages=read.items("install_script_packages"),
            allow_yarn_repository_code=read.boolean("allow_yarn_repository_code"),
            allow_build_command=read.boolean("allow_build_command"),
            adopt_unowned_objects=read.boolean("adopt_unowned_objects"),
            tenants=read.string("tenants"),
            provenance_signing_conn_id=read.string("provenance_signing_conn_id"),
            allow_unsigned_provenance=read.boolean("allow_unsigned_provenance"),
            egress_upstream_proxy=read.proxy_url("egress_upstream_proxy", credentials=True),
            services_file=Path(read.string("services_file")) if read.string("services_file").strip() else None,
            dag_owner=read.string("dag_owner"),
            pool=read.string("pool"),
            max_active_runs=read.positive("max_active_runs"),
            stage_retries=read.json("stage_retries", dict),
            failure_callback=read.string("failure_callback"),
            dependency_cache_dir=None if read.string("dependency_cache_dir") == "none"
            else Path(read.string("dependency_cache_dir") or temp / "dependency-cache"),
            dependency_cache_claim=read.string("dependency_cache_claim"),
            dependency_cache_max_mb=read.positive("dependency_cache_max_mb"),
        )
        if bad := bad_endpoint_entries(settings.allowed_r2_endpoints):
            raise SettingsError(f"[{SECTION}] allowed_r2_endpoints: expected host patterns, addresses or networks, each "
                                f"with an optional :port (digits or *; [IPv6]:port), got {', '.join(bad)}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in settings.stage_retries.values()):
            raise SettingsError(f'[{SECTION}] stage_retries: expected a JSON object of whole numbers, like {{"install": 3}}')
        for name in settings.install_script_packages:
            if not PACKAGE_NAME.match(name):
                raise SettingsError(f"[{SECTION}] install_script_packages: {name!r} is not an npm package name")
        for path in settings.sandbox_read_only_paths:
            if not path.is_absolute():
                raise SettingsError(f"[{SECTION}] sandbox_read_only_paths: expected absolute paths, got {str(path)!r}")
        return settings


class _Reader:
    """Airflow's typed getters over the section, each error naming the setting and what it expects."""

    def __init__(self) -> None:
        from airflow.sdk.configuration import conf

        self.conf = conf

    def string(self, key: str) -> str:
        return str(self.conf.get(SECTION, key, fallback=DEFAULTS[key]))

    def items(self, key: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in self.string(key).split(",") if item.strip())

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.string(key)
        if value not in allowed:
            raise SettingsError(f"[{SECTION}] {key}: expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def boolean(self, key: str) -> bool:
        try:
            return bool(self.conf.getboolean(SECTION, key, fallback=DEFAULTS[key] == "True"))
        except (ValueError, AirflowConfigException):
            raise SettingsError(f"[{SECTION}] {key}: expected true or false, got {self.string(key)!r}") from None

    def positive(self, key: str) -> int:
        try:
            value = int(self.conf.getint(SECTION, key, fallback=int(DEFAULTS[key])))
        except (ValueError, AirflowConfigException):
            raise SettingsError(f"[{SECTION}] {key}: expected a whole number, got {self.string(key)!r}") from None
        if value <= 0:
            raise SettingsError(f"[{SECTION}] {key}: expected a positive number, got {value}")
        return value

    def proxy_url(self, key: str, *, credentials: bool = False) -> str:
        """An HTTP proxy's URL, ``http://host:port`` (``http://user:password@host:port`` where
        ``credentials``), or ""."""
        value = self.string(key).strip()
        if not value:
            return ""
        try:
            url = urlsplit(value)
            port = url.port
        except ValueError:
            port, url = None, urlsplit("")
        if (url.scheme != "http" or not url.hostname or port is None or url.path.strip("/") or url.query
                or (url.username is not None and not credentials)):
            shown = value if url.password is None else value.replace(url.password, "***")
            raise SettingsError(f"[{SECTION}] {key}: expected an HTTP proxy as "
                                f"http://{'[user:password@]' if credentials else ''}host:port, got {shown!r}")
        return f"http://{url.netloc}"

    def template(self, key: str, field: str) -> str:
        value = self.string(key)
        if "{" + field + "}" not in value:
            raise SettingsError(f"[{SECTION}] {key}: expected a value holding {{{field}}}, got {value!r}")
        try:
            value.format(**{field: "20"})
        except (KeyError, IndexError, ValueError):
            raise SettingsError(f"[{SECTION}] {key}: only {{{field}}} may be in braces, got {value!r}") from None
        return value

    def json(self, key: str, kind: type) -> Any:
        try:
            value = self.conf.getjson(SECTION, key, fallback=json.loads(DEFAULTS[key]))
        except (ValueError, AirflowConfigException) as error:
            raise SettingsError(f"[{SECTION}] {key}: expected a JSON {'object' if kind is dict else 'list'}: {error}") from None
        if not isinstance(value, kind):
            raise SettingsError(f"[{SECTION}] {key}: expected a JSON {'object' if kind is dict else 'list'}")
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value = self.json(key, dict) if self.string(key).strip() else {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SettingsError(f'[{SECTION}] {key}: expected a JSON object of strings, like {{"NAME": "value"}}')
        return dict(value)
