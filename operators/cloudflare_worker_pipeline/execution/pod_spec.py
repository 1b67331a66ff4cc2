"""The pod a stage script runs in: non-root, no privilege, no capabilities, no API token, no
service links, credentials only by Secret reference. Built as a plain ``V1Pod`` (no operator)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import models as k8s

from cloudflare_worker_pipeline.execution.base import stage_program
from cloudflare_worker_pipeline.execution.egress import proxy_env
from cloudflare_worker_pipeline.settings import PodSettings
from cloudflare_worker_pipeline.workspace import POD_LABELS, ClaimMount

BASE_CONTAINER = "base"
TERMINATION_LOG = "/dev/termination-log"
# Selected by examples/kubernetes/network-policies.yaml: "none" (bundle, kustomize), "git"
# (checkout), "registry" (install).
EGRESS_LABEL = "cloudflare-worker-pipeline.planton.cloud/egress"


@dataclass(frozen=True)
class StagePod:
    """What differs between stage pods: the stage, its script and image, who it runs for."""

    stage: str  # e.g. kustomize-build: the pod name's prefix and its component label
    script: str
    image: str
    env: Mapping[str, str]
    namespace: str
    egress: str
    workspace: ClaimMount
    timeout_seconds: int
    labels: Mapping[str, str] = field(default_factory=dict)  # the owner's and the task's
    secret_refs: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # env name -> (Secret, key)
    cache_claim: str = ""  # mounted at PodSettings.cache_mount_path (the install stage's dependency cache)
    proxy: str = ""  # the egress proxy its tools go out through (http://host:port), or "" for none


def build_stage_pod(stage: StagePod, pods: PodSettings) -> k8s.V1Pod:
    """The ``V1Pod`` for ``stage``; its name ends in a random suffix, so retries never collide."""
    uid = pods.run_as_user
    seccomp = k8s.V1SeccompProfile(type="RuntimeDefault")
    workspace = pods.workspace_mount_path
    values = {**stage.env, **(proxy_env(stage.proxy) if stage.proxy else {})}  # the proxy wins over install_env
    env = [k8s.V1EnvVar(name=name, value=value) for name, value in values.items()]
    env += [k8s.V1EnvVar(name=name, value_from=k8s.V1EnvVarSource(
        secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key, optional=True)))
        for name, (secret, key) in stage.secret_refs.items()]
    env += [
        k8s.V1EnvVar(name="HOME", value=f"{workspace}/.home"),  # npm, corepack and git caches for this run
        k8s.V1EnvVar(name="TERMINATION_LOG", value=TERMINATION_LOG),
    ]
    container = k8s.V1Container(
        name=BASE_CONTAINER,
        image=stage.image,
        image_pull_policy="IfNotPresent",
        command=["sh", "-c", stage_program(stage.script), stage.script],
        env=env,
        resources=k8s.V1ResourceRequirements(**pods.resources),
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True, run_as_user=uid, run_as_group=uid, allow_privilege_escalation=False,
            privileged=False, read_only_root_filesystem=True, capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=seccomp,
        ),
        volume_mounts=[
            k8s.V1VolumeMount(name="workspace", mount_path=workspace, sub_path=stage.workspace.sub_path),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),  # an emptyDir: the root filesystem is read-only
            *([k8s.V1VolumeMount(name="dependency-cache", mount_path=pods.cache_mount_path)] if stage.cache_claim else []),
        ],
        termination_message_path=TERMINATION_LOG,
        termination_message_policy="File",
    )
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(
            name=f"{stage.stage}-{secrets.token_hex(4)}",
            namespace=stage.namespace,
            labels={**POD_LABELS, "app.kubernetes.io/component": stage.stage, EGRESS_LABEL: stage.egress,
                    **stage.labels},
        ),
        spec=k8s.V1PodSpec(
            containers=[container],
            restart_policy="Never",
            active_deadline_seconds=stage.timeout_seconds,
            # No Kubernetes service addresses in the environment: a build has no business finding them.
            enable_service_links=False,
            automount_service_account_token=False,
            service_account_name=pods.service_account or None,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=name) for name in pods.image_pull_secrets] or None,
            node_selector=dict(pods.node_selector) or None,
            tolerations=[_toleration(t) for t in pods.tolerations] or None,
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True, run_as_user=uid, run_as_group=uid, fs_group=uid, seccomp_profile=seccomp),
            volumes=[
                k8s.V1Volume(name="workspace", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=stage.workspace.claim_name)),
                k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource()),
                *([k8s.V1Volume(name="dependency-cache", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=stage.cache_claim))] if stage.cache_claim else []),
            ],
        ),
    )


def _toleration(spec: Mapping[str, Any]) -> k8s.V1Toleration:
    return k8s.V1Toleration(
        key=spec.get("key"), operator=spec.get("operator"), value=spec.get("value"),
        effect=spec.get("effect"), toleration_seconds=spec.get("tolerationSeconds"),
    )
