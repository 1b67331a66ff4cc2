"""The ways in, against a running Airflow (api-server, scheduler, dag-processor, triggerer on
PostgreSQL): the service catalogue's REST call, and the Asset event a deploy DAG is scheduled on."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, R2_ACCESS_KEY, R2_SECRET_KEY, REPO, SESSION_DIR
from tests.helpers import NAMESPACE, OWNER, conf_for, objects_in, two_workers_conf

DAG_ID = "build_and_upload_cloudflare_worker"
SERVICES_FILE = """services:
  - name: nightly-worker
    schedule: "@daily"
    params:
      git-url: https://github.com/org/nightly.git
      r2-bucket-name: scripts
      r2-endpoint-url: https://074755a78d8e8f77c119a90a125e8a06.r2.cloudflarestorage.com
      r2-object-key: nightly/{commit_sha}.js
      worker-script-artifact-config-map-name: nightly-artifact
      kustomize-manifests-config-map-name: nightly-manifests
  - name: broken-worker
    schedule: "@daily"
    params:
      git-url: https://github.com/org/broken.git
      r2-bucket-name: Not_A_Bucket
      r2-endpoint-url: https://074755a78d8e8f77c119a90a125e8a06.r2.cloudflarestorage.com
      r2-object-key: broken/{commit_sha}.js
      worker-script-artifact-config-map-name: broken-artifact
      kustomize-manifests-config-map-name: broken-manifests
"""

RESTRICTED = "svc-restricted"
USERNAME = "ci"


def tenant_map(username: str) -> str:
    """The server runs under a tenant map, as a multi-team platform would: the tests' owner is
    granted the test repositories and their keys, for the test user; a second owner only for the
    service catalogue's user."""
    return json.dumps({
        f"{OWNER[0]}={OWNER[1]}": {"repositories": ["git://127.0.0.1:*/*.git"], "config-map-names": ["*"],
                                   "r2-object-key-prefixes": ["hello-worker/", "my-worker/", "api/", "cron/", "ui-hello/"],
                                   "callers": [username]},
        f"{OWNER[0]}={RESTRICTED}": {"repositories": ["git://127.0.0.1:*/restricted-*.git"],
                                     "config-map-names": ["restricted-*"], "r2-object-key-prefixes": ["restricted/"],
                                     "callers": ["service-catalogue"]},
    })


class StatsdListener:
    """A StatsD server on 127.0.0.1 that keeps every metric line it receives."""

    def __init__(self) -> None:
        import socket
        import threading

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.lines: list[str] = []
        threading.Thread(target=self._receive, name="statsd", daemon=True).start()

    def _receive(self) -> None:
        while True:
            data, _ = self.socket.recvfrom(65536)
            self.lines.extend(data.decode(errors="replace").splitlines())


@pytest.fixture(scope="module")
def statsd() -> StatsdListener:
    return StatsdListener()


@pytest.fixture(scope="module")
def airflow_server(s3_server, kube_api, git_server, statsd):
    from examples.local_stack.airflow_server import start_airflow
    from examples.local_stack.postgres import start_postgres

    postgres = start_postgres(Path(tempfile.mkdtemp(prefix="cfw-postgres-")) / "pg")
    dags = SESSION_DIR / "server-dags"
    dags.mkdir(exist_ok=True)
    for source in [*(REPO / "dags").glob("*.py"), REPO / "examples" / "dags" / "deploy_worker_bundle.py"]:
        shutil.copy(source, dags / source.name)
    kubeconfig = kube_api.write_kubeconfig(SESSION_DIR / "server-kubeconfig.yaml")
    services = SESSION_DIR / "server-services.yaml"  # one valid service, one bad entry
    services.write_text(SERVICES_FILE)
    server = start_airflow(SESSION_DIR / "server-airflow", postgres.url, dags, {
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW_CONN_R2_DEFAULT": json.dumps({"conn_type": "aws", "login": R2_ACCESS_KEY, "password": R2_SECRET_KEY}),
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes",
                                                       "extra": {"kube_config_path": str(kubeconfig)}}),
        "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__WORKSPACE_ROOT": str(SESSION_DIR / "server-workspaces"),
        "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__SERVICES_FILE": str(services),
        "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__TENANTS": tenant_map(USERNAME),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
    }, username=USERNAME)
    try:
        server.wait_for_dag(DAG_ID)
        server.wait_for_dag("deploy_worker_bundle")
        yield server
    finally:
        server.stop()
        postgres.stop()


def test_the_catalogue_triggers_a_build_over_rest_and_reads_the_results_back(airflow_server, git_server, kube_api,
                                                                            bucket, s3_server, s3_client,
                                                                            statsd) -> None:
    repo = git_server.publish("rest-hello", REPO / "examples" / "hello-worker")
    api = airflow_server.api()
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url, r2_object_key="hello-worker/{commit_sha}.js")
    response = api.post(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf},
                        timeout=30)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    run = airflow_server.wait_for_run(DAG_ID, run_id)
    assert run["state"] == "success"

    def result(task_id: str, **params: int) -> dict:
        url = f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        entry = api.get(url, params={"deserialize": "true", **params}, timeout=10)
        assert entry.status_code == 200, entry.text
        value = entry.json()["value"]
        return value if isinstance(value, dict) else json.loads(value)

    commit = repo.head()
    assert result("checkout")["commit_sha"] == commit
    upload = result("upload", map_index=0)  # mapped over the run's workers: here one
    assert result("publish")["artifact"] == upload, "the README's way: the release describes every worker"
    assert result("publish")["additional_workers"] == []
    key = f"hello-worker/{commit}.js"
    body = objects_in(s3_client, bucket)[key]
    assert upload == {"artifact_url": f"{s3_server.endpoint_url}/{bucket}/{key}", "bucket": bucket, "key": key,
                      "sha256": hashlib.sha256(body).hexdigest(), "size_bytes": len(body), "commit_sha": commit,
                      "replaced_sha256": None, "skipped": False, "files": upload["files"], "provenance": upload["provenance"],
                      "egress_log": upload["egress_log"], "signature": upload["signature"],
                      "gzip_bytes": upload["gzip_bytes"], "brotli_bytes": upload["brotli_bytes"]}
    assert upload["signature"]["key"] == f"{key}.intoto.jsonl", "a running Airflow signs too"
    assert [f["key"] for f in upload["files"]] == [f"{key}.map"] and 0 < upload["gzip_bytes"] < len(body)
    assert kube_api.get(NAMESPACE, "my-worker-artifact-metadata")["data"]["path"] == key

    # The publish step's Asset event schedules the example deploy DAG, which receives the object's facts.
    deploy_runs = []
    for _ in range(60):
        deploy_runs = api.get(f"{airflow_server.url}/api/v2/dags/deploy_worker_bundle/dagRuns", timeout=10).json()["dag_runs"]
        if deploy_runs and deploy_runs[-1]["state"] in ("success", "failed"):
            break
        __import__("time").sleep(2)
    assert deploy_runs and deploy_runs[-1]["state"] == "success", deploy_runs
    deploy_run = deploy_runs[-1]["dag_run_id"]
    entry = api.get(f"{airflow_server.url}/api/v2/dags/deploy_worker_bundle/dagRuns/{deploy_run}/taskInstances/"
                    "bundle_to_deploy/xcomEntries/return_value", params={"deserialize": "true"}, timeout=10).json()
    assert entry["value"]["key"] == key and entry["value"]["sha256"] == upload["sha256"]
    assert entry["value"]["commit_sha"] == commit

    # A metrics backend sees the bundle's size and each stage's duration.
    assert f"airflow.cloudflare_worker_pipeline.bundle_size_bytes.{DAG_ID}:{len(body)}|g" in statsd.lines
    timers = {line.split(":")[0] for line in statsd.lines if line.endswith("|ms")}
    for stage in ("checkout", "install", "bundle", "kustomize_build"):
        assert f"airflow.cloudflare_worker_pipeline.stage_duration.{DAG_ID}.{stage}" in timers

    # The same commit again: the scheduler skips the build and publish still applies the ConfigMaps.
    again = api.post(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf},
                     timeout=30).json()["dag_run_id"]
    assert airflow_server.wait_for_run(DAG_ID, again)["state"] == "success"
    states = {ti["task_id"]: ti["state"] for ti in api.get(
        f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns/{again}/taskInstances", timeout=10).json()["task_instances"]}
    assert states == {**dict.fromkeys(("install", "bundle", "typecheck", "upload"), "skipped"),
                      **dict.fromkeys(("setup", "checkout", "kustomize_build",
                                       "publish", "remove_workspace"), "success")}
    published = api.get(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns/{again}/taskInstances/publish/xcomEntries/"
                        "return_value", params={"deserialize": "true"}, timeout=10).json()["value"]
    assert published["artifact"] == {**upload, "skipped": True}
    assert kube_api.get(NAMESPACE, "my-worker-artifact-metadata")["metadata"]["annotations"][
        "cloudflare-worker-pipeline.planton.cloud/dag-run"].endswith(again)


def test_the_scheduler_maps_the_workers_group_over_two_workers(airflow_server, git_server, kube_api, bucket,
                                                               s3_server, s3_client) -> None:
    """The mapped group as the dag-processor serialized it and the scheduler expanded it: one
    bundle, typecheck and upload instance per worker, one object and artifact ConfigMap each."""
    repo = git_server.publish("rest-two-workers", FIXTURES / "projects" / "pnpm-two-workers")
    api = airflow_server.api()
    conf = two_workers_conf(repo.url, bucket, s3_server.endpoint_url, api_key="api/{commit_sha}.js",
                            cron_key="cron/{commit_sha}.js")
    run_id = api.post(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf},
                      timeout=30).json()["dag_run_id"]

    assert airflow_server.wait_for_run(DAG_ID, run_id)["state"] == "success"
    instances = api.get(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
                        timeout=10).json()["task_instances"]
    mapped = sorted((ti["task_id"], ti["map_index"], ti["state"]) for ti in instances if ti["map_index"] >= 0)
    assert mapped == [(task, index, "success") for task in ("bundle", "typecheck", "upload") for index in (0, 1)]
    commit = repo.head()
    stored = objects_in(s3_client, bucket)
    for key, name in ((f"api/{commit}.js", "api-worker-artifact"), (f"cron/{commit}.js", "cron-worker-artifact")):
        assert kube_api.get(NAMESPACE, name)["data"]["content-hash"] == hashlib.sha256(stored[key]).hexdigest()


def test_a_hostile_repository_steals_nothing_from_a_running_airflow(airflow_server, git_server, kube_api, bucket,
                                                                    s3_server, s3_client, tmp_path) -> None:
    """The process-ancestry case: the task runner, the LocalExecutor worker and the scheduler hold
    the connections, the JWT secret and the database URL in their environments; the repository's
    postinstall and [build] command look for them (and in the server's home) from the sandbox."""
    import uuid
    from urllib.parse import urlsplit

    from tests.helpers import hostile_project

    home = airflow_server.home
    targets = [home / "passwords.json", home / "airflow.cfg", home / "scheduler.log"]
    project = hostile_project(tmp_path, targets, urlsplit(airflow_server.url).port, uuid.uuid4().hex)
    repo = git_server.publish("rest-hostile", project)
    api = airflow_server.api()
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)
    response = api.post(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf},
                        timeout=30)
    assert response.status_code == 200, response.text

    run = airflow_server.wait_for_run(DAG_ID, response.json()["dag_run_id"])

    assert run["state"] == "success"
    report = objects_in(s3_client, bucket)["my-worker/build.js"].decode()
    assert "== install ran" in report and "== bundle ran" in report
    for secret in (R2_SECRET_KEY, airflow_server.jwt_secret, airflow_server.password, "postgresql://"):
        assert secret not in report, f"{secret!r} reached the bundle"
    assert all(f"cannot read {target}" in report for target in targets), report
    assert "bundle network: none" in report, "the bundle stage could reach the API server"


def test_the_rest_caller_is_who_the_tenant_map_binds(airflow_server, git_server, kube_api, bucket, s3_server,
                                                     s3_client) -> None:
    """Under the server's tenant map the REST API's authenticated user is the run's caller: an owner
    granted only to the service catalogue's user is refused for this one, at validation."""
    repo = git_server.publish("restricted-worker", REPO / "examples" / "hello-worker")
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url, owner_identifier_label_value=RESTRICTED,
                    r2_object_key="restricted/worker.js", worker_script_artifact_config_map_name="restricted-artifact",
                    kustomize_manifests_config_map_name="restricted-manifests")
    api = airflow_server.api()
    response = api.post(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf},
                        timeout=30)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    assert airflow_server.wait_for_run(DAG_ID, run_id)["state"] == "failed"
    states = {ti["task_id"]: ti["state"] for ti in api.get(
        f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", timeout=10).json()["task_instances"]}
    assert states["setup"] == "failed" and states["checkout"] == "upstream_failed", states
    log = api.get(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/setup/logs/1",
                  headers={"Accept": "application/json"}, timeout=10).text
    assert f"{airflow_server.username!r}, who triggered this run" in log, log[-3000:]
    assert "restricted/worker.js" not in objects_in(s3_client, bucket)
    assert kube_api.get(NAMESPACE, "restricted-artifact") is None


def test_the_simple_auth_password_file_is_private(airflow_server) -> None:
    assert (airflow_server.home / "passwords.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("change,parameter", [
    ({"r2-bucket-name": None}, "r2-bucket-name"),  # required, left out
    ({"r2-object-key": 42}, "r2-object-key"),  # not a string
    ({"kustomize-manifests-config-map-name": ""}, "kustomize-manifests-config-map-name"),  # required, empty
    ({"r2-bucket-name": "Bad_Bucket!"}, "r2-bucket-name"),
    ({"r2-object-key": "w/$(id).js"}, "r2-object-key"),
    ({"r2-object-key": "w/a && b.js"}, "r2-object-key"),
    ({"r2-object-key": "../x.js"}, "r2-object-key"),  # a '..' segment
    ({"worker-script-artifact-config-map-name": "Not_A_Name"}, "worker-script-artifact-config-map-name"),
    ({"kustomize-manifests-config-map-name": "kube-root-ca.crt"}, "kustomize-manifests-config-map-name"),
    ({"git-url": "ssh://-oProxyCommand=touch%20/tmp/x/repo.git"}, "git-url"),
    ({"r2-endpoint-url": "https://host/with/a/path"}, "r2-endpoint-url"),
    ({"additional-workers": '{"project-root": "services/b"}'}, "additional-workers"),  # an object, not an array
    ({"wrangler-extra-args": "--minify"}, "wrangler-extra-args"),  # a string, not a JSON array
    ({"typescript-check": "maybe"}, "typescript-check"),
    ({"bundle-size-limit-applies-to": "brotli"}, "bundle-size-limit-applies-to"),
    ({"bundle-size-limit-bytes": "10MB"}, "bundle-size-limit-bytes"),
])
def test_a_conf_breaking_the_schema_is_refused_with_400_naming_the_parameter(airflow_server, change, parameter) -> None:
    conf = {**conf_for("https://github.com/org/repo.git", "scripts", "https://example.r2.cloudflarestorage.com"), **change}
    conf = {key: value for key, value in conf.items() if value is not None}
    response = airflow_server.api().post(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns",
                                         json={"logical_date": None, "conf": conf}, timeout=30)
    assert response.status_code == 400, response.text
    assert parameter in response.text


def test_a_bad_services_entry_leaves_the_valid_services_scheduled_on_a_real_dag_processor(airflow_server) -> None:
    """Airflow drops every DAG of a file with an import error: the bad entry must not be one."""
    api = airflow_server.api()
    airflow_server.wait_for_dag("cloudflare_worker_services_file_errors")
    nightly = api.get(f"{airflow_server.url}/api/v2/dags/rebuild_nightly-worker", timeout=10).json()
    assert nightly["is_stale"] is False and nightly["timetable_summary"] == "0 0 * * *"  # @daily
    assert nightly["next_dagrun_run_after"], "the valid service is scheduled"
    errors = api.get(f"{airflow_server.url}/api/v2/dags/cloudflare_worker_services_file_errors", timeout=10).json()
    assert "service 'broken-worker' params.r2-bucket-name" in errors["description"]
    assert api.get(f"{airflow_server.url}/api/v2/importErrors", timeout=10).json()["total_entries"] == 0
    # its one run fails the entry's task, with the error in the task's log
    runs = []
    for _ in range(60):
        runs = api.get(f"{airflow_server.url}/api/v2/dags/cloudflare_worker_services_file_errors/dagRuns",
                       timeout=10).json()["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            break
        time.sleep(2)
    assert runs and runs[0]["state"] == "failed"


def test_api_needs_a_token(airflow_server) -> None:
    import requests

    response = requests.post(f"{airflow_server.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}},
                             timeout=30)
    assert response.status_code == 401


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-gpu", "--no-first-run"]


@pytest.fixture
def browser_page(airflow_server, request):
    """Debian's Chromium, headless, driven by Playwright; a screenshot is kept when the test fails."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.set_default_timeout(90_000)  # a loaded 2-core CI machine renders slowly
        yield page
        if getattr(getattr(request.node, "rep_call", None), "failed", False):
            shot = SESSION_DIR.parent / f"{request.node.name}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
        browser.close()


def test_a_person_triggers_a_build_from_the_ui_form(airflow_server, browser_page, git_server, kube_api, bucket,
                                                    s3_server, s3_client) -> None:
    page = browser_page
    repo = git_server.publish("ui-hello", REPO / "examples" / "hello-worker")
    page.goto(f"{airflow_server.url}/")
    page.get_by_label("Username").fill(airflow_server.username)
    page.get_by_label("Password").fill(airflow_server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{airflow_server.url}/")

    page.goto(f"{airflow_server.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog")
    values = {
        "Source": {"git-url": repo.url},
        "Storage": {"r2-bucket-name": bucket, "r2-endpoint-url": s3_server.endpoint_url,
                    "r2-object-key": "ui-hello/{short_sha}.js"},
        "Kubernetes metadata": {"worker-script-artifact-config-map-name": "ui-hello-artifact",
                                "kustomize-manifests-config-map-name": "ui-hello-manifests",
                                "owner-identifier-label-key": OWNER[0], "owner-identifier-label-value": OWNER[1]},
    }
    for section, fields in values.items():  # one section open at a time, as the form shows them
        form.get_by_role("button", name=section).click()
        for name, value in fields.items():
            field = form.locator(f"#element_{name}")
            field.wait_for(state="visible")
            field.fill(value)
    form.get_by_role("button", name="Build").click()
    assert form.locator("#element_project-root").input_value() == "."  # defaults are filled in
    assert form.locator("#element_kustomize-base-directory").input_value() == "_kustomize"
    form.get_by_role("button", name="Trigger").click()

    page.wait_for_url(f"{airflow_server.url}/dags/{DAG_ID}/runs/**")
    run_id = page.url.rsplit("/runs/", 1)[1]
    from urllib.parse import unquote

    run = airflow_server.wait_for_run(DAG_ID, unquote(run_id))
    assert run["state"] == "success"
    page.reload()
    page.get_by_text("Success").first.wait_for(state="visible")
    key = f"ui-hello/{repo.head()[:12]}.js"
    assert key in objects_in(s3_client, bucket)
    assert kube_api.get(NAMESPACE, "ui-hello-artifact")["data"]["path"] == key
