"""PipelineKubernetesHook against the Kubernetes API emulator: conditional ConfigMap writes with
ownership checks, and workspace claims."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import NAMESPACE

LOG = logging.getLogger(__name__)
MANAGED = {"app.kubernetes.io/managed-by": "planton-cloud"}
OWNER_KEY = "cloudflare-worker-pipeline.planton.cloud/owner"


def hook() -> object:
    from cloudflare_worker_pipeline.hooks.kubernetes import PipelineKubernetesHook

    return PipelineKubernetesHook(conn_id="kubernetes_default")


def manifest(name: str, owner: str, data: dict[str, str]) -> dict:
    from cloudflare_worker_pipeline.config_maps import config_map

    return config_map(name, NAMESPACE, MANAGED, data, {OWNER_KEY: owner})


def test_apply_creates_then_updates_in_place(connections) -> None:
    where = hook().apply_config_map(manifest("cm-a", "team=a", {"k": "1"}), LOG)
    hook().apply_config_map(manifest("cm-a", "team=a", {"k": "2"}), LOG)

    assert where == f"configmap/cm-a in namespace {NAMESPACE} (connection kubernetes_default)"
    assert connections.get(NAMESPACE, "cm-a")["data"] == {"k": "2"}
    methods = [method for method, path, _ in connections.requests if "/configmaps" in path and method != "GET"]
    assert methods == ["POST", "PATCH"]


def test_apply_refuses_another_owners_config_map(connections) -> None:
    from cloudflare_worker_pipeline.ownership import ConfigMapOwnedElsewhereError

    hook().apply_config_map(manifest("cm-b", "team=a", {"k": "1"}), LOG)
    with pytest.raises(ConfigMapOwnedElsewhereError, match=r"belongs to another owner \(team=a\)"):
        hook().apply_config_map(manifest("cm-b", "team=b", {"k": "2"}), LOG)
    assert connections.get(NAMESPACE, "cm-b")["data"] == {"k": "1"}


def test_apply_writes_nothing_when_no_longer_current(connections) -> None:
    assert hook().apply_config_map(manifest("cm-c", "team=a", {"k": "1"}), LOG, still_current=lambda: False) is None
    assert connections.get(NAMESPACE, "cm-c") is None


def test_a_conflict_reads_again_and_lands(connections) -> None:
    from examples.local_stack.kube_api import Fault

    fault = connections.inject(Fault("POST", r"/configmaps$", 409))
    hook().apply_config_map(manifest("cm-d", "team=a", {"k": "1"}), LOG)
    assert fault.times == 0 and connections.get(NAMESPACE, "cm-d")["data"] == {"k": "1"}


def test_claims_are_created_once_read_and_deleted(connections) -> None:
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "ws-1", "namespace": NAMESPACE},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    assert hook().create_claim(claim) is True
    assert hook().create_claim(claim) is False, "a retried setup finds it"
    assert hook().claim_access_modes("ws-1", NAMESPACE) == {"ReadWriteOnce"}
    assert hook().delete_claim("ws-1", NAMESPACE) is True
    assert hook().delete_claim("ws-1", NAMESPACE) is False
    assert hook().claim_access_modes("ws-1", NAMESPACE) is None
