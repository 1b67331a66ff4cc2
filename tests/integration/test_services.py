"""Scheduled rebuilds: one DAG per entry of the services file, bad entries reported by name."""

from __future__ import annotations

import textwrap

import pytest

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import REPO
from tests.helpers import assert_published

SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"


def dag_bag(monkeypatch, services_file):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(SETTING + "SERVICES_FILE", str(services_file))
    return DagBag(dag_folder=str(REPO / "dags"))


def test_the_example_services_file_gives_one_scheduled_dag_per_service(monkeypatch, airflow_db) -> None:
    bag = dag_bag(monkeypatch, REPO / "examples" / "services.yaml")
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["build_and_upload_cloudflare_worker", "rebuild_api-worker", "rebuild_hello-worker"]
    hello = bag.get_dag("rebuild_hello-worker")
    assert hello.timetable.expression == "0 3 * * *"
    assert hello.params["git-branch"] == "main"
    assert hello.params["r2-object-key"] == "hello-worker/{commit_sha}.js"
    assert hello.params["project-root"] == "."  # the spec's default where the service sets none
    assert bag.get_dag("rebuild_api-worker").params["package-manager-directory"] == "."


@pytest.mark.parametrize("bad_entry,message", [
    ("r2-bucket-name: Not_A_Bucket", "service 'broken' params.r2-bucket-name: Invalid parameter 'r2-bucket-name'"),
    ("git-url: ext::sh -c x", "service 'broken' params.git-url"),
])
def test_a_bad_entry_is_reported_by_a_failing_dag_naming_it_while_the_others_load(monkeypatch, airflow_db, tmp_path,
                                                                                  bad_entry, message) -> None:
    services = tmp_path / "services.yaml"
    good = textwrap.dedent("""
          git-url: https://github.com/org/repo.git
          r2-bucket-name: scripts
          r2-endpoint-url: https://example.r2.cloudflarestorage.com
          r2-object-key: w/{commit_sha}.js
          worker-script-artifact-config-map-name: w-artifact
          kustomize-manifests-config-map-name: w-manifests""")
    broken = "\n".join(bad_entry if line.strip().startswith(bad_entry.split(":")[0] + ":") else line
                       for line in good.splitlines())
    services.write_text("services:\n  - name: fine\n    schedule: '@daily'\n    params:" + textwrap.indent(good, "      ")
                        + "\n  - name: broken\n    schedule: '@daily'\n    params:" + textwrap.indent(broken, "      ") + "\n")
    bag = dag_bag(monkeypatch, services)
    assert bag.import_errors == {}, "an import error would make the dag-processor drop the valid services' DAGs"
    assert "rebuild_fine" in bag.dag_ids and "rebuild_broken" not in bag.dag_ids
    errors = bag.get_dag("cloudflare_worker_services_file_errors")
    assert message in errors.description and message in errors.doc_md
    assert [task.error for task in errors.tasks] == [next(line for line in errors.doc_md.splitlines()
                                                          if line.startswith("- "))[2:]]
    assert message in errors.tasks[0].error


def test_a_bad_schedule_is_named(monkeypatch, airflow_db, tmp_path) -> None:
    services = tmp_path / "services.yaml"
    services.write_text("services:\n  - name: nightly\n    schedule: every night\n    params: {}\n")
    bag = dag_bag(monkeypatch, services)
    errors = bag.get_dag("cloudflare_worker_services_file_errors")
    assert "service 'nightly' schedule: expected a cron expression" in errors.tasks[0].error


def test_a_scheduled_service_rebuilds_its_branch_head(monkeypatch, airflow_db, git_server, connections, bucket, s3_server,
                                                      s3_client, tmp_path) -> None:
    repo = git_server.publish("scheduled", REPO / "examples" / "hello-worker")
    head = repo.commit({"src/extra.txt": "a later commit\n"}, "new head of main")
    services = tmp_path / "services.yaml"
    services.write_text(textwrap.dedent(f"""
        services:
          - name: scheduled
            schedule: "@hourly"
            params:
              git-url: {repo.url}
              git-branch: main
              r2-bucket-name: {bucket}
              r2-endpoint-url: {s3_server.endpoint_url}
              r2-object-key: my-worker/build.js
              worker-script-artifact-config-map-name: my-worker-artifact-metadata
              kustomize-manifests-config-map-name: my-worker-manifests
              owner-identifier-label-key: planton.cloud/service-id
              owner-identifier-label-value: svc-abc123
        """))
    dag = dag_bag(monkeypatch, services).get_dag("rebuild_scheduled")
    run = run_pipeline(dag, {}, fill_defaults=False)  # no conf: the service's own parameters
    assert_published(run, s3_client, connections, bucket, "my-worker/build.js")
    assert run.xcom("checkout")["commit_sha"] == head
