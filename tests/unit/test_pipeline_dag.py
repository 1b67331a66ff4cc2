"""The DAG factory's knobs (owner, retries, pool, runs at once, failure callback), from settings and
from arguments, and the docs the UI shows."""

from __future__ import annotations

import pytest

from tests.helpers import SETTING, record_failure


def build(**kwargs: object) -> object:
    from cloudflare_worker_pipeline.pipeline import bundle_asset, pipeline_dag

    return pipeline_dag("knobs", asset=bundle_asset("knobs"), **kwargs)


def test_the_defaults_retry_only_what_a_retry_can_fix() -> None:
    dag = build()
    assert {task.task_id: task.retries for task in dag.tasks} == {
        "setup": 0, "checkout": 2, "install": 1, "bundle": 0, "typecheck": 0,
        "upload": 3, "kustomize_build": 1, "publish": 3, "remove_workspace": 0}
    assert dag.max_active_runs == 4
    assert {task.owner for task in dag.tasks} == {"airflow"}
    assert {task.pool for task in dag.tasks} == {"default_pool"}


def test_settings_set_owner_pool_runs_retries_and_the_failure_callback(monkeypatch) -> None:
    monkeypatch.setenv(SETTING + "DAG_OWNER", "platform-team")
    monkeypatch.setenv(SETTING + "POOL", "worker-builds")
    monkeypatch.setenv(SETTING + "MAX_ACTIVE_RUNS", "9")
    monkeypatch.setenv(SETTING + "STAGE_RETRIES", '{"install": 4}')
    monkeypatch.setenv(SETTING + "FAILURE_CALLBACK", "tests.helpers.record_failure")
    dag = build()

    install = dag.get_task("install")
    assert install.retries == 4 and dag.get_task("upload").retries == 3
    assert install.owner == "platform-team" and install.pool == "worker-builds"
    assert dag.max_active_runs == 9
    assert all(record_failure in (task.on_failure_callback or []) for task in dag.tasks)


def test_arguments_win_over_settings(monkeypatch) -> None:
    monkeypatch.setenv(SETTING + "STAGE_RETRIES", '{"install": 4}')
    dag = build(owner="team-a", retries={"install": 0}, pool="team-a-builds", max_active_runs=1)
    install = dag.get_task("install")
    assert (install.retries, install.owner, install.pool, dag.max_active_runs) == (0, "team-a", "team-a-builds", 1)


def test_an_unknown_task_in_retries_or_a_missing_callback_is_an_error_naming_it(monkeypatch) -> None:
    from cloudflare_worker_pipeline.settings import SettingsError

    with pytest.raises(ValueError, match=r"retries: unknown task id\(s\) instal;"):
        build(retries={"instal": 3})
    monkeypatch.setenv(SETTING + "FAILURE_CALLBACK", "no_such_module.notify")
    with pytest.raises(SettingsError, match=r"failure_callback: cannot import 'no_such_module.notify'"):
        build()


def test_the_dag_carries_a_runbook_and_every_task_its_doc() -> None:
    dag = build()
    assert dag.doc_md.startswith("# Build and upload a Cloudflare Worker")
    assert "## When a run is red" in dag.doc_md
    assert all(task.doc_md for task in dag.tasks)
