"""Which workspace a run gets, decided from the settings in one place, and where each kind lives."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import SETTING

DAG, RUN = "build_and_upload_cloudflare_worker", "manual__2026-11-30T00:00:00+00:00"


def workspace(monkeypatch: pytest.MonkeyPatch, **settings: str) -> object:
    from cloudflare_worker_pipeline.settings import PipelineSettings
    from cloudflare_worker_pipeline.workspace import run_workspace

    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", "/srv/builds")
    for key, value in settings.items():
        monkeypatch.setenv(SETTING + key.upper(), value)
    return run_workspace(PipelineSettings.from_airflow_config(), DAG, RUN)


def test_the_local_mode_gets_a_directory_per_run_and_no_volume(monkeypatch) -> None:
    from cloudflare_worker_pipeline.modes import WorkspaceKind

    local = workspace(monkeypatch)
    assert local.kind is WorkspaceKind.LOCAL_DIRECTORY
    assert str(local.path).startswith(f"/srv/builds/{DAG}/manual__2026-11-30T00_00_00_00_00-")
    assert local.volume() is None


def test_the_kubernetes_mode_gets_a_claim_per_run_unless_a_shared_claim_is_set(monkeypatch) -> None:
    from cloudflare_worker_pipeline.modes import WorkspaceKind

    per_run = workspace(monkeypatch, execution_mode="kubernetes")
    assert per_run.kind is WorkspaceKind.RUN_CLAIM
    assert per_run.volume().claim_name.startswith("cfw-workspace-") and per_run.volume().sub_path is None
    assert per_run.path == per_run.path.parent / per_run.volume().claim_name

    shared = workspace(monkeypatch, execution_mode="kubernetes", workspace_claim="builds")
    assert shared.kind is WorkspaceKind.SHARED_CLAIM
    assert shared.volume().claim_name == "builds"
    assert f"/srv/builds/{shared.volume().sub_path}" == str(shared.path)


def test_a_misspelt_mode_or_destination_is_refused_naming_the_setting(monkeypatch) -> None:
    from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError

    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "kubernets")
    with pytest.raises(SettingsError, match=r"execution_mode: expected one of local, kubernetes, got 'kubernets'"):
        PipelineSettings.from_airflow_config()
    monkeypatch.setenv(SETTING + "EXECUTION_MODE", "local")
    monkeypatch.setenv(SETTING + "CONFIGMAP_DESTINATION", "file")
    with pytest.raises(SettingsError, match=r"configmap_destination: expected one of cluster, files, got 'file'"):
        PipelineSettings.from_airflow_config()


def test_the_cluster_destination_without_its_connection_is_an_error_not_a_fall_back(monkeypatch) -> None:
    from cloudflare_worker_pipeline.config_maps import config_map_store
    from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError

    monkeypatch.delenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", raising=False)
    monkeypatch.setenv(SETTING + "KUBERNETES_CONN_ID", "kubernetes_defualt")
    with pytest.raises(SettingsError, match=r"no connection 'kubernetes_defualt'.*configmap_destination = files"):
        config_map_store(PipelineSettings.from_airflow_config())


def test_a_workspace_another_worker_prepared_fails_saying_what_to_do(tmp_path) -> None:
    import socket

    from cloudflare_worker_pipeline.workspace import WorkspaceNotVisibleError, check_visible

    check_visible(tmp_path, "checkout")  # here: nothing to say
    with pytest.raises(WorkspaceNotVisibleError) as error:
        check_visible(tmp_path / "elsewhere", "install")
    message = str(error.value)
    assert message.startswith(f"install: the run's workspace {tmp_path / 'elsewhere'} is not on this worker "
                              f"({socket.gethostname()})")
    assert "same workspace_root on a shared volume" in message and "one worker's queue" in message


def test_a_directory_whose_sandbox_check_fails_is_removed_again(monkeypatch, tmp_path) -> None:
    """The teardown runs only after a setup that succeeded: a failed check must not leave the directory."""
    from cloudflare_worker_pipeline.execution.sandbox import SandboxUnavailableError
    from cloudflare_worker_pipeline.settings import PipelineSettings
    from cloudflare_worker_pipeline.workspace import run_workspace

    monkeypatch.setenv(SETTING + "WORKSPACE_ROOT", str(tmp_path / "builds"))
    local = run_workspace(PipelineSettings.from_airflow_config(), DAG, RUN)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    with pytest.raises(SandboxUnavailableError):
        local.prepare(logging.getLogger("test"), {})
    assert not local.path.exists() and local.path.parent.is_dir()
