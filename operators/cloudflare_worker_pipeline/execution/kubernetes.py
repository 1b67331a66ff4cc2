"""The ``kubernetes`` execution mode: a stage script runs in a pod.

Composed from the cncf-kubernetes provider's public pieces, never by running an operator inside
another: ``KubernetesHook`` for the client, ``PodManager`` to create the pod, wait for it, stream
its log and delete it, and ``KubernetesPodTrigger`` when the stage defers (``deferrable``).
Imported only when a task runs in this mode, so DAG parsing never pays for the provider.

The pod runs the same ``sh -c`` program as the local mode and writes its results to the run's
workspace claim, which the worker mounts too (it reads the bundle there): the worker reads them
as the local mode does. The termination message, which the kubelet cuts at 4 KiB, carries only
a failing script's ``ERROR:`` lines.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
from airflow.providers.cncf.kubernetes.utils.container import get_container_termination_message
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager
from airflow.sdk.exceptions import TaskDeferred
from kubernetes.client import CoreV1Api
from kubernetes.client import models as k8s

from cloudflare_worker_pipeline.connections import optional_connection
from cloudflare_worker_pipeline.execution.base import StageScriptError, TaskLog, read_results
from cloudflare_worker_pipeline.execution.pod_spec import BASE_CONTAINER, StagePod, build_stage_pod
from cloudflare_worker_pipeline.modes import ExecutionMode
from cloudflare_worker_pipeline.results import EgressEntry
from cloudflare_worker_pipeline.settings import PodSettings

# A stage's pods of one task instance, whatever the try: what a restarted task looks for.
REATTACH_LABELS = ("dag_id", "task_id", "run_id", "map_index", "app.kubernetes.io/component")


class PodScriptRunner:
    """Runs stage scripts in pods built by :func:`build_stage_pod`.

    :param stage: the pod's description, less its env, script and timeout (given per run).
    :param workspace: the run's workspace as the worker sees it (the same claim the pods mount).
    :param results_dir: the stage's results directory there.
    :param resume_method: the operator's method a deferred stage resumes in.
    """

    mode = ExecutionMode.KUBERNETES
    # The fetch pods' egress proxy is a Deployment of its own (examples/kubernetes/egress-proxy.yaml),
    # which logs every connection with the pod's address; the task does not see them.
    egress: list[EgressEntry] | None = None

    def __init__(self, log: TaskLog, *, pods: PodSettings, conn_id: str, stage: StagePod, workspace: Path,
                 results_dir: Path, resume_method: str = "resume_stage") -> None:
        self.log = log
        self.workspace = workspace
        self.results_dir = results_dir
        self.pods = pods
        self.conn_id = conn_id
        self.stage = stage
        self.resume_method = resume_method
        self._pod: k8s.V1Pod | None = None
        self._manager: PodManager | None = None

    @property
    def script_workspace(self) -> str:
        return self.pods.workspace_mount_path

    def build_pod(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> k8s.V1Pod:
        """The pod that would run ``script``: public, so its spec can be checked without a cluster."""
        stage = replace(self.stage, script=script, env={**env, "RESULTS_DIR": str(results_dir)},
                        timeout_seconds=timeout_seconds)
        return build_stage_pod(stage, self.pods)

    @property
    def manager(self) -> PodManager:
        if self._manager is None:
            self._manager = PodManager(kube_client=self.client)
        return self._manager

    @cached_property
    def client(self) -> CoreV1Api:
        """The hook's client, for what ``PodManager`` does not do (finding an earlier try's pod)."""
        return KubernetesHook(conn_id=self.conn_id).core_v1_client

    def run(self, script: str, env: Mapping[str, str], *, results_dir: Path, timeout_seconds: int) -> dict[str, str]:
        """Create the pod and wait for it here, or (``deferrable``) hand the wait to the triggerer.
        A pod an earlier try of this task left running (its worker died) is followed instead."""
        pod = self.build_pod(script, env, results_dir=results_dir, timeout_seconds=timeout_seconds)
        earlier = self._earlier_pod(pod)
        if earlier is not None:
            self.log.info("Reattaching to pod %s/%s, which try %s of this task started and which is %s: following it "
                          "instead of starting %s again", earlier.metadata.namespace, earlier.metadata.name,
                          (earlier.metadata.labels or {}).get("try_number", "?"), earlier.status.phase, script)
            pod = earlier
        else:
            self.log.info("Running %s in pod %s/%s (image %s)", script, pod.metadata.namespace, pod.metadata.name,
                          self.stage.image)
            self.manager.create_pod(pod)
        self._pod = pod
        if self.pods.deferrable:
            raise TaskDeferred(trigger=self._trigger(pod), method_name=self.resume_method,
                               timeout=datetime.timedelta(seconds=timeout_seconds + self.pods.startup_timeout_seconds + 60))
        try:
            asyncio.run(self.manager.await_pod_start(pod, schedule_timeout=self.pods.startup_timeout_seconds,
                                                     startup_timeout=self.pods.startup_timeout_seconds))
            self.manager.fetch_requested_container_logs(pod, [BASE_CONTAINER], follow_logs=True,
                                                        container_name_log_prefix_enabled=False)
            remote = self.manager.await_pod_completion(pod, container_name=BASE_CONTAINER)
        except StageScriptError:
            raise
        except Exception as error:  # never started, or the API failed while waiting
            self._log_events(pod)
            self._delete(pod, failed=True)
            raise StageScriptError(f"{script} failed in pod {pod.metadata.name}: {error}", diagnosed=False) from None
        return self._finish(script, pod, remote, timeout_seconds)

    def resume(self, script: str, event: Mapping[str, Any], *, timeout_seconds: int) -> dict[str, str]:
        """After the trigger fired: the pod's log into the task log, then its results."""
        pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=event["name"], namespace=event["namespace"]))
        self._pod = pod
        if event.get("status") in ("error", "timeout"):
            self._delete(pod, failed=True)
            raise StageScriptError(f"{script} failed in pod {event['name']}: {event.get('message', event['status'])}",
                                   diagnosed=False)
        remote = self.manager.read_pod(pod)
        self.manager.fetch_requested_container_logs(remote, [BASE_CONTAINER], follow_logs=False,
                                                    container_name_log_prefix_enabled=False)
        return self._finish(script, pod, remote, timeout_seconds)

    def terminate(self) -> None:
        if self._pod is not None:
            self.manager.delete_pod(self._pod)

    def _trigger(self, pod: k8s.V1Pod) -> KubernetesPodTrigger:
        connection = optional_connection(self.conn_id)
        return KubernetesPodTrigger(
            pod_name=pod.metadata.name, pod_namespace=pod.metadata.namespace,
            trigger_start_time=datetime.datetime.now(tz=datetime.UTC), base_container_name=BASE_CONTAINER,
            kubernetes_conn_id=self.conn_id, connection_extras=connection.extra_dejson if connection else None,
            get_logs=False, startup_timeout=self.pods.startup_timeout_seconds,
            schedule_timeout=self.pods.startup_timeout_seconds, poll_interval=2, on_finish_action="keep_pod",
        )

    def _finish(self, script: str, pod: k8s.V1Pod, remote: k8s.V1Pod, timeout_seconds: int) -> dict[str, str]:
        """The results the script wrote to the claim, or the error the script or Kubernetes gave."""
        message = get_container_termination_message(remote, BASE_CONTAINER) or ""
        phase = getattr(remote.status, "phase", None)
        if phase != "Succeeded":
            self._log_events(pod)
        self._delete(pod, failed=phase != "Succeeded")
        if phase != "Succeeded":
            errors = [line for line in message.splitlines() if line.startswith("ERROR:")]
            if errors:
                raise StageScriptError("\n".join(errors), diagnosed=True)
            if getattr(remote.status, "reason", None) == "DeadlineExceeded":
                raise StageScriptError(f"{script} timed out after {timeout_seconds} s and was stopped", diagnosed=False)
            raise StageScriptError(f"{script} failed in pod {pod.metadata.name} (phase {phase}): "
                                   f"{message.strip() or 'no termination message'}", diagnosed=False)
        return read_results(self.workspace, self.results_dir)

    def _log_events(self, pod: k8s.V1Pod) -> None:
        """The pod's events (image pulls, scheduling, OOM kills): why it failed, when its log cannot say."""
        try:
            for event in self.manager.read_pod_events(pod).items:
                self.log.warning("Pod %s event: %s %s", pod.metadata.name, event.reason, event.message)
        except Exception as error:  # best effort: the failure itself is reported either way
            self.log.warning("Could not read the events of pod %s: %s", pod.metadata.name, error)

    def _earlier_pod(self, pod: k8s.V1Pod) -> k8s.V1Pod | None:
        """What ``KubernetesPodOperator(reattach_on_restart=True)`` looks for: this stage's pod of
        the same task instance, any try. The newest pending, running or succeeded one is followed
        (a finished try deleted its pod); the others are deleted, failed ones kept where
        ``keep_failed_pods`` says so, and never followed."""
        labels = pod.metadata.labels or {}
        selector = ",".join(f"{key}={labels[key]}" for key in REATTACH_LABELS if key in labels)
        found = self.client.list_namespaced_pod(pod.metadata.namespace, label_selector=selector).items
        found.sort(key=lambda p: (p.metadata.creation_timestamp or datetime.datetime.min.replace(tzinfo=datetime.UTC),
                                  p.metadata.name))
        alive = [p for p in found if getattr(p.status, "phase", None) in ("Pending", "Running", "Succeeded")]
        chosen = alive[-1] if alive else None
        for leftover in found:
            if leftover is not chosen:
                self.log.info("Pod %s/%s was left by an earlier try (%s)", leftover.metadata.namespace,
                              leftover.metadata.name, getattr(leftover.status, "phase", "unknown"))
                self._delete(leftover, failed=getattr(leftover.status, "phase", None) == "Failed")
        return chosen

    def _delete(self, pod: k8s.V1Pod, *, failed: bool) -> None:
        self._pod = None
        if failed and self.pods.keep_failed_pods:
            self.log.info("Keeping failed pod %s/%s (setting keep_failed_pods)", pod.metadata.namespace, pod.metadata.name)
            return
        self.manager.delete_pod(pod)
