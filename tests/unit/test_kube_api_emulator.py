"""The Kubernetes API emulator behaves like an API server where the pipeline and kubectl look."""

from __future__ import annotations

import subprocess

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


@pytest.fixture
def core_v1(kube_api, tmp_path):
    kube_api.clear()
    api_client = config.new_client_from_config(str(kube_api.write_kubeconfig(tmp_path / "kubeconfig")))
    return client.CoreV1Api(api_client)


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}, "data": data}


def test_create_assigns_uid_and_resource_version_and_refuses_a_duplicate(core_v1) -> None:
    created = core_v1.create_namespaced_config_map("ns", cm("a", k="v"))
    assert created.metadata.uid and created.metadata.resource_version
    with pytest.raises(ApiException) as error:
        core_v1.create_namespaced_config_map("ns", cm("a"))
    assert error.value.status == 409 and "AlreadyExists" in error.value.body


def test_missing_objects_are_404(core_v1) -> None:
    with pytest.raises(ApiException) as error:
        core_v1.read_namespaced_config_map("nope", "ns")
    assert error.value.status == 404


def test_a_stale_replace_is_a_conflict(core_v1) -> None:
    created = core_v1.create_namespaced_config_map("ns", cm("a", k="1"))
    core_v1.replace_namespaced_config_map("a", "ns", created)
    with pytest.raises(ApiException) as error:
        core_v1.replace_namespaced_config_map("a", "ns", created)  # resourceVersion now stale
    assert error.value.status == 409


def test_server_side_apply_creates_then_updates_in_place(core_v1) -> None:
    apply = {"field_manager": "tests", "force": True, "_content_type": "application/apply-patch+yaml"}
    first = core_v1.patch_namespaced_config_map("a", "ns", cm("a", {"x": "1"}, k="1"), **apply)
    second = core_v1.patch_namespaced_config_map("a", "ns", cm("a", {"y": "2"}, k="2"), **apply)
    assert second.metadata.uid == first.metadata.uid
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert second.data == {"k": "2"} and second.metadata.labels == {"x": "1", "y": "2"}


def test_label_selectors_filter_lists(core_v1, kube_api, tmp_path) -> None:
    core_v1.create_namespaced_config_map("ns", cm("a", {"team": "x", "tier": "web"}))
    core_v1.create_namespaced_config_map("ns", cm("b", {"team": "y"}))
    core_v1.create_namespaced_config_map("other", cm("c", {"team": "x"}))
    names = lambda selector: [i.metadata.name for i in core_v1.list_config_map_for_all_namespaces(label_selector=selector).items]  # noqa: E731
    assert names("team=x") == ["a", "c"]
    assert names("team!=x") == ["b"]
    assert names("team in (x,y),tier") == ["a"]
    assert names("!tier") == ["b", "c"]
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kc")
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "cm", "-n", "ns", "-l", "team", "-o", "name"],
                         check=True, capture_output=True, text=True).stdout
    assert out.split() == ["configmap/a", "configmap/b"]


@pytest.mark.parametrize("code", [409, 410, 500])
def test_injected_status_faults_answer_once_then_the_server_recovers(core_v1, kube_api, code) -> None:
    from examples.local_stack.kube_api import Fault

    kube_api.inject(Fault("POST", r"/configmaps$", code))
    with pytest.raises(ApiException) as error:
        core_v1.create_namespaced_config_map("ns", cm("a"))
    assert error.value.status == code
    assert core_v1.create_namespaced_config_map("ns", cm("a")).metadata.name == "a"


def test_an_injected_stall_holds_the_request(core_v1, kube_api) -> None:
    import urllib3

    from examples.local_stack.kube_api import Fault

    kube_api.inject(Fault("GET", r"/configmaps/a$", "stall", times=10, stall_seconds=3))  # urllib3 retries too
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        core_v1.read_namespaced_config_map("a", "ns", _request_timeout=0.5)
