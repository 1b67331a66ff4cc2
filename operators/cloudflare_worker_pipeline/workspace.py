"""A run's workspace (the spec's ``source`` workspace): where it is, how it is prepared, mounted
and removed. :func:`run_workspace` picks the kind from ``settings.workspace_kind``.

- local directory: ``<workspace_root>/<dag_id>/<run>`` on the worker (the local mode);
- per-run claim: a PersistentVolumeClaim per run (the spec's ``volumeClaimTemplate``), mounted on
  KubernetesExecutor worker pods at ``<workspace_root>/<claim>`` by :func:`mount_workspace`;
- shared claim: one ReadWriteMany claim mounted at ``workspace_root`` on every worker, each run
  beneath it at ``<dag_id>/<run>``, which stage pods mount as a sub-path.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudflare_worker_pipeline.execution.base import TaskLog
from cloudflare_worker_pipeline.get_provider_info import MAIN_DAG_ID, SECTION
from cloudflare_worker_pipeline.modes import WorkspaceKind
from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError

POD_LABELS = {"app.kubernetes.io/part-of": "cloudflare-worker-pipeline"}


class WorkspaceNotVisibleError(RuntimeError):
    """The run's workspace is not on the worker running this task."""


def check_visible(path: Path, task_id: str) -> None:
    """Fail when ``path`` (the run's workspace, prepared by ``setup``) is not on this
    worker: another worker prepared it, and this one does not share its ``workspace_root``."""
    if path.is_dir():
        return
    raise WorkspaceNotVisibleError(
        f"{task_id}: the run's workspace {path} is not on this worker ({socket.gethostname()}): setup "
        "created it on another. Every task of a run must see one workspace: give all workers the same "
        f"workspace_root on a shared volume ([{SECTION}] workspace_root), or route the pipeline's tasks to one "
        "worker's queue (README, \"Scaling out\")"
    )


@dataclass(frozen=True)
class ClaimMount:
    """The claim a stage pod mounts as its workspace, and the sub-path within it."""

    claim_name: str
    sub_path: str | None


class Workspace(ABC):
    """One run's workspace. ``path`` is where the worker sees it; stage pods mount :meth:`volume`."""

    kind: WorkspaceKind

    def __init__(self, settings: PipelineSettings, dag_id: str, run_id: str) -> None:
        self.settings = settings
        self.dag_id = dag_id
        self.run_id = run_id

    @property
    @abstractmethod
    def path(self) -> Path: ...

    @abstractmethod
    def prepare(self, log: TaskLog, labels: dict[str, str]) -> None:
        """Create it, or fail with a SettingsError saying why this deployment cannot hold it."""

    def volume(self) -> ClaimMount | None:
        """What a stage pod mounts; None for a local directory."""
        return None

    def remove(self, log: TaskLog) -> None:
        """Delete everything the run wrote (checkout, node_modules, dist), whatever its outcome."""
        if self.path.exists():
            shutil.rmtree(self.path)
            log.info("Removed workspace %s", self.path)
        else:
            log.info("Workspace %s was never created", self.path)

    def _run_directory(self) -> Path:
        """``<workspace_root>/<dag_id>/<run>``: readable, and unique even where run ids sanitise alike."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.run_id)[:80]
        digest = hashlib.sha256(f"{self.dag_id}/{self.run_id}".encode()).hexdigest()[:10]
        return self.settings.workspace_root / self.dag_id / f"{safe}-{digest}"


class LocalDirectory(Workspace):
    kind = WorkspaceKind.LOCAL_DIRECTORY

    @property
    def path(self) -> Path:
        return self._run_directory()

    def prepare(self, log: TaskLog, labels: dict[str, str]) -> None:
        """Create the directory and, unless ``sandbox = none``, prove bubblewrap runs here."""
        from cloudflare_worker_pipeline.execution.sandbox import check_sandbox

        self.path.mkdir(parents=True, exist_ok=True)
        if self.settings.sandbox != "none":
            try:
                check_sandbox(self.path.parent / f".sandbox-check-{self.path.name}")
            except BaseException:  # the teardown runs only after a setup that succeeded
                shutil.rmtree(self.path, ignore_errors=True)
                raise
        log.info("Prepared workspace %s (%s)", self.path, self.kind.value)


class RunClaim(Workspace):
    kind = WorkspaceKind.RUN_CLAIM

    @property
    def claim_name(self) -> str:
        """Derived from the run, so every task (and a pod mutation hook) finds it."""
        return "cfw-workspace-" + hashlib.sha256(f"{self.dag_id}/{self.run_id}".encode()).hexdigest()[:20]

    @property
    def path(self) -> Path:
        return self.settings.workspace_root / self.claim_name

    def volume(self) -> ClaimMount:
        return ClaimMount(self.claim_name, None)

    def prepare(self, log: TaskLog, labels: dict[str, str]) -> None:
        from airflow.sdk.configuration import conf

        from cloudflare_worker_pipeline.hooks.kubernetes import PipelineKubernetesHook

        executor = str(conf.get("core", "executor", fallback=""))
        if "KubernetesExecutor" not in executor:
            raise SettingsError(
                f"[{SECTION}] workspace_claim is empty, so each run gets its own claim, which only KubernetesExecutor "
                "worker pods can mount (through cloudflare_worker_pipeline.workspace.mount_workspace in "
                f"pod_mutation_hook); the executor is {executor!r}: set workspace_claim to an existing ReadWriteMany "
                f"claim mounted at workspace_root ({self.settings.workspace_root}) on every worker"
            )
        pods, namespace = self.settings.pods, self.settings.namespace
        spec: dict[str, Any] = {"accessModes": [pods.workspace_access_mode],
                                "resources": {"requests": {"storage": pods.workspace_size}}}
        if pods.workspace_storage_class:
            spec["storageClassName"] = pods.workspace_storage_class
        manifest = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "spec": spec,
                    "metadata": {"name": self.claim_name, "namespace": namespace, "labels": {**POD_LABELS, **labels}}}
        created = PipelineKubernetesHook(conn_id=self.settings.kubernetes_conn_id).create_claim(manifest)
        log.info("%s PersistentVolumeClaim %s/%s (%s, %s) for this run's workspace",
                 "Created" if created else "Found", namespace, self.claim_name, pods.workspace_size,
                 pods.workspace_access_mode)

    def remove(self, log: TaskLog) -> None:
        from cloudflare_worker_pipeline.hooks.kubernetes import PipelineKubernetesHook

        namespace = self.settings.namespace
        deleted = PipelineKubernetesHook(conn_id=self.settings.kubernetes_conn_id).delete_claim(self.claim_name, namespace)
        log.info("%s PersistentVolumeClaim %s/%s", "Deleted" if deleted else "No", namespace, self.claim_name)


class SharedClaim(Workspace):
    kind = WorkspaceKind.SHARED_CLAIM

    @property
    def path(self) -> Path:
        return self._run_directory()

    def volume(self) -> ClaimMount:
        return ClaimMount(self.settings.pods.workspace_claim, self.path.relative_to(self.settings.workspace_root).as_posix())

    def prepare(self, log: TaskLog, labels: dict[str, str]) -> None:
        """The upload and publish tasks read the workspace on the worker: can they?"""
        from cloudflare_worker_pipeline.hooks.kubernetes import PipelineKubernetesHook

        name, settings = self.settings.pods.workspace_claim, self.settings
        modes = PipelineKubernetesHook(conn_id=settings.kubernetes_conn_id).claim_access_modes(name, settings.namespace)
        if modes is None:
            raise SettingsError(f"[{SECTION}] workspace_claim: claim {name!r} not found in namespace {settings.namespace}")
        if "ReadWriteMany" not in modes:
            raise SettingsError(
                f"[{SECTION}] workspace_claim: claim {name!r} has access modes {sorted(modes)}; stage pods and workers "
                "read and write it at the same time, which needs ReadWriteMany")
        if not settings.workspace_root.is_dir():
            raise SettingsError(
                f"[{SECTION}] workspace_root: {settings.workspace_root} is not on this worker. In the kubernetes mode "
                f"workers read bundles and rendered manifests from claim {name!r}: mount it there (a ReadWriteMany "
                "claim on Celery workers; cloudflare_worker_pipeline.workspace.mount_workspace in pod_mutation_hook "
                "for KubernetesExecutor)"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        log.info("Prepared workspace %s in claim %s (%s)", self.path, name, self.kind.value)


_KINDS: dict[WorkspaceKind, type[Workspace]] = {
    WorkspaceKind.LOCAL_DIRECTORY: LocalDirectory, WorkspaceKind.RUN_CLAIM: RunClaim,
    WorkspaceKind.SHARED_CLAIM: SharedClaim,
}


def run_workspace(settings: PipelineSettings, dag_id: str, run_id: str) -> Workspace:
    """The run's workspace, of the kind the settings give."""
    return _KINDS[settings.workspace_kind](settings, dag_id, run_id)


def pipeline_dag_ids(settings: PipelineSettings) -> tuple[str, ...]:
    """The pipeline's DAG ids: the main DAG's and each scheduled rebuild's (the services file's
    valid entries, read anew, as the dag-processor reads them)."""
    from cloudflare_worker_pipeline.services import Service, load_services

    path = settings.services_file
    if path is None:
        return (MAIN_DAG_ID,)
    return (MAIN_DAG_ID, *(entry.dag_id for entry in load_services(path, git_schemes=settings.git_url_schemes)
                           if isinstance(entry, Service)))


def mount_workspace(pod: Any, *, dag_ids: tuple[str, ...] | None = None) -> None:
    """``pod_mutation_hook`` helper: mount the workspace claim on KubernetesExecutor worker pods.

    Call it from ``airflow_local_settings.pod_mutation_hook``. For worker pods of ``dag_ids`` (by
    default the pipeline's: :func:`pipeline_dag_ids`) it mounts the run's claim (per-run claims)
    or the shared claim at ``workspace_root``, so the upload and publish tasks read what the stage
    pods wrote. Other pods are left alone.
    """
    from kubernetes.client import models as k8s

    labels = pod.metadata.labels or {}
    annotations = pod.metadata.annotations or {}
    if labels.get("kubernetes_executor") != "True" or not annotations.get("dag_id"):
        return
    settings = PipelineSettings.from_airflow_config()
    if annotations["dag_id"] not in (dag_ids if dag_ids is not None else pipeline_dag_ids(settings)):
        return
    workspace = run_workspace(settings, annotations["dag_id"], annotations["run_id"])
    mount = workspace.volume()
    if mount is None:
        return
    mount_path = workspace.path if mount.sub_path is None else settings.workspace_root
    pod.spec.volumes = [*(pod.spec.volumes or []), k8s.V1Volume(
        name="cloudflare-worker-workspace",
        persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=mount.claim_name))]
    base = next(c for c in pod.spec.containers if c.name == "base")
    base.volume_mounts = [*(base.volume_mounts or []),
                          k8s.V1VolumeMount(name="cloudflare-worker-workspace", mount_path=str(mount_path))]
