"""The deployment's modes, each decided once from the settings and passed around as a value.

Code asks ``settings.execution_mode is ExecutionMode.KUBERNETES``, never compares strings, and
never infers a mode from something else (whether a connection exists, whether a field is empty).
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionMode(StrEnum):
    """Where stage scripts run."""

    LOCAL = "local"  # processes on the worker, in a bubblewrap sandbox
    KUBERNETES = "kubernetes"  # pods, through the cncf-kubernetes provider


class ConfigMapDestination(StrEnum):
    """Where the publish step writes the two ConfigMaps."""

    CLUSTER = "cluster"  # the Kubernetes API, through the kubernetes_conn_id connection
    FILES = "files"  # manifest files under manifest_dir, for `kubectl apply -f` (laptops, CI)


class WorkspaceKind(StrEnum):
    """What holds a run's workspace."""

    LOCAL_DIRECTORY = "local directory"  # the local mode: <workspace_root>/<dag>/<run> on the worker
    RUN_CLAIM = "per-run claim"  # the kubernetes mode, workspace_claim empty: a claim per run
    SHARED_CLAIM = "shared claim"  # the kubernetes mode: <dag>/<run> beneath one ReadWriteMany claim
