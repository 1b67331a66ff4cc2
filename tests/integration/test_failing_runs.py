"""Runs that must fail, and how: the spec's error messages, bad parameters refused before anything
is cloned or written, limits and timeouts; and what a failed run leaves (nothing published).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from examples.local_stack import free_port
from examples.local_stack.dag_run import fast_retries, run_pipeline
from tests.conftest import R2_SECRET_KEY, REPO
from tests.helpers import (
    NAMESPACE,
    SETTING,
    conf_for,
    failure_output,
    hello_worker_variant,
    objects_in,
    workspace_of,
)


def test_missing_wrangler_config_fails_with_the_spec_error(pipeline_dag, git_server, connections, bucket, s3_server,
                                                           s3_client, tmp_path, capfd) -> None:
    repo = git_server.publish("no-wrangler", hello_worker_variant(tmp_path, "no-wrangler", remove=("wrangler.toml",)))
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "failed"
    assert run.task_states["bundle"] == "failed"
    assert run.task_states["upload"] == run.task_states["publish"] == "upstream_failed"
    assert run.task_states["kustomize_build"] == "success"
    assert "ERROR: wrangler.toml not found in project root" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}
    assert connections.objects() == {}, "a failed bundle publishes no manifests either: the release is whole or absent"
    assert not workspace_of(run).exists()


def test_a_worker_that_yields_no_javascript_bundle_fails_with_the_spec_error(pipeline_dag, git_server, connections, bucket,
                                                                             s3_server, s3_client, tmp_path, capfd) -> None:
    """A Python Worker: Wrangler's dry run succeeds, but there is no JavaScript bundle to ship."""
    project = hello_worker_variant(tmp_path, "python-worker", files={
        "src/entry.py": 'from workers import Response\n\ndef on_fetch(request):\n    return Response("hi")\n',
        "wrangler.toml": 'name = "py"\nmain = "src/entry.py"\ncompatibility_date = "2024-09-23"\n'
                         'compatibility_flags = ["python_workers"]\n',
    })
    repo = git_server.publish("python-worker", project)
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["bundle"] == "failed"
    assert "ERROR: Bundle not created at dist/index.js" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}


def test_unreachable_r2_endpoint_is_retried_then_fails_with_the_spec_error(pipeline_dag, git_server, connections, bucket,
                                                                           s3_server, capfd) -> None:
    repo = git_server.publish("refused", REPO / "examples" / "hello-worker")
    with fast_retries(pipeline_dag, "upload"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, f"http://127.0.0.1:{free_port()}"))

    assert run.state == "failed"
    assert run.task_states["upload"] == "failed"
    assert run.task_states["publish"] == "upstream_failed"
    output = failure_output(capfd)
    assert f"upload: failed: s3://{bucket}/my-worker/build.js Connection refused" in output
    retries = pipeline_dag.get_task("upload").retries
    assert output.count(f"upload: failed: s3://{bucket}") >= 1 + retries, "a refused connection is transient: it is retried"
    assert connections.get(NAMESPACE, "my-worker-artifact-metadata") is None
    assert R2_SECRET_KEY not in output


def test_a_failing_overlay_fails_kustomize_build_naming_it(pipeline_dag, git_server, connections, bucket, s3_server,
                                                           tmp_path, capfd) -> None:
    project = hello_worker_variant(tmp_path, "broken-overlay", files={
        "_kustomize/overlays/qa/kustomization.yaml": "resources:\n  - ../../nowhere\n"})
    repo = git_server.publish("broken-overlay", project)
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "failed"
    assert run.task_states["kustomize_build"] == "failed"
    assert run.task_states["upload"] == "upstream_failed" and run.task_states["publish"] == "upstream_failed"
    assert "ERROR: kustomize build failed for overlay qa:" in failure_output(capfd)
    assert connections.objects() == {}, "a failed overlay publishes no artifact metadata either"


def test_a_fixed_key_keeps_the_old_release_whole_when_the_overlays_fail(pipeline_dag, git_server, connections, bucket,
                                                                        s3_server, s3_client, tmp_path) -> None:
    """Issue 21: with a fixed r2-object-key, upload once replaced the object while the overlays
    failed, so the artifact ConfigMap named a hash the key no longer held. The upload now waits
    for kustomize_build: the old object, its files and both ConfigMaps stay as they were."""
    repo = git_server.publish("fixed-key-overlay", REPO / "examples" / "hello-worker")
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)  # my-worker/build.js: no {commit_sha}
    assert run_pipeline(pipeline_dag, conf).state == "success"
    released = objects_in(s3_client, bucket), connections.objects()
    repo.commit({"src/index.ts": (REPO / "examples" / "hello-worker" / "src" / "index.ts").read_text().replace(
        "Hello from", "Changed in"), "_kustomize/overlays/qa/kustomization.yaml": "resources:\n  - ../../nowhere\n"},
        "a new bundle and a broken overlay")

    run = run_pipeline(pipeline_dag, conf)

    assert run.task_states["kustomize_build"] == "failed" and run.task_states["bundle"] == "success", run.task_states
    assert run.task_states["upload"] == "upstream_failed"
    assert (objects_in(s3_client, bucket), connections.objects()) == released


def test_a_bundle_over_the_deployment_ceiling_fails_before_upload_giving_both_sizes(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, monkeypatch, capfd) -> None:
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__MAX_BUNDLE_BYTES", "4096")
    repo = git_server.publish("too-large", REPO / "examples" / "hello-worker")
    refused = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))
    assert refused.task_states["setup"] == "failed", "the run's limit may not exceed the ceiling"
    assert ("Invalid parameter 'bundle-size-limit-bytes': expected at most 4096 (the deployment's setting "
            "max_bundle_bytes), got 10485760") in failure_output(capfd)

    run = run_pipeline(pipeline_dag, {**conf_for(repo.url, bucket, s3_server.endpoint_url),
                                      "bundle-size-limit-bytes": "4096"})
    assert run.task_states["bundle"] == "failed"
    assert run.task_states["upload"] == "upstream_failed"
    assert re.search(r"ERROR: Bundle too large: dist/index.js is \d+ bytes, over the limit of 4096 bytes "
                     r"\(setting max_bundle_bytes\)", failure_output(capfd))
    assert objects_in(s3_client, bucket) == {}


def test_the_run_size_limit_counts_raw_or_gzip_bytes_as_asked(pipeline_dag, git_server, connections, bucket, s3_server,
                                                              s3_client, capfd) -> None:
    """The example's bundle is ~63 KB raw and ~13 KB gzipped: 30,000 bytes refuses it raw, admits it gzipped."""
    repo = git_server.publish("size-limit", REPO / "examples" / "hello-worker")
    conf = {**conf_for(repo.url, bucket, s3_server.endpoint_url), "bundle-size-limit-bytes": "30000"}
    raw = run_pipeline(pipeline_dag, conf)
    assert raw.task_states["bundle"] == "failed" and objects_in(s3_client, bucket) == {}
    assert re.search(r"ERROR: Bundle too large: dist/index.js is \d+ bytes, over the limit of 30000 bytes \(parameter "
                     r"bundle-size-limit-bytes, measured raw", failure_output(capfd))

    gzip = run_pipeline(pipeline_dag, {**conf, "bundle-size-limit-applies-to": "gzip"})
    assert gzip.state == "success"
    bundle = gzip.xcom("bundle")
    assert bundle["gzip_bytes"] < 30000 < bundle["size_bytes"] and 0 < bundle["brotli_bytes"] < bundle["gzip_bytes"]


def test_a_stage_over_its_timeout_is_stopped_and_retried(pipeline_dag, git_server, connections, bucket, s3_server,
                                                         monkeypatch, capfd) -> None:
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__STAGE_TIMEOUT_SECONDS", "2")
    repo = git_server.publish("slow-install", REPO / "examples" / "hello-worker")
    with fast_retries(pipeline_dag, "checkout", "install"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["install"] == "failed"
    output = failure_output(capfd)
    expected_tries = 1 + pipeline_dag.get_task("install").retries
    assert output.count("install.sh timed out after 2 s and was stopped") >= expected_tries
    assert not workspace_of(run).exists()


def test_a_deployment_can_forbid_build_command(pipeline_dag, git_server, connections, bucket, s3_server, s3_client,
                                              monkeypatch, capfd) -> None:
    monkeypatch.setenv(SETTING + "ALLOW_BUILD_COMMAND", "False")
    repo = git_server.publish("forbidden-build-command", REPO / "examples" / "hello-worker")

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url,
                                              build_command='["node", "-e", "1"]'))

    assert run.task_states["setup"] == "failed", run.task_states
    output = failure_output(capfd)
    assert "Invalid parameter 'build-command'" in output and "allow_build_command = False" in output, output[-2000:]
    assert objects_in(s3_client, bucket) == {}


def test_another_port_on_an_allowed_endpoint_host_is_refused_before_anything_is_written(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, monkeypatch, capfd) -> None:
    from urllib.parse import urlsplit

    s3_port = urlsplit(s3_server.endpoint_url).port
    monkeypatch.setenv(SETTING + "ALLOWED_R2_ENDPOINTS", f"127.0.0.1:{s3_port}")  # the host, on S3's port only
    repo = git_server.publish("other-port", REPO / "examples" / "hello-worker")
    other = urlsplit(repo.url).port  # a real service on the allowed host: the git daemon

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, f"http://127.0.0.1:{other}"))

    assert run.task_states["setup"] == "failed", run.task_states
    assert f"port {other} of host 127.0.0.1 is not allowed here" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}


@pytest.mark.parametrize("overrides,parameter", [
    ({"worker_script_artifact_config_map_name": "Not_A_DNS_Name"}, "worker-script-artifact-config-map-name"),
    ({"git_url": "ext::sh -c touch% /tmp/pwned"}, "git-url"),
    ({"r2_object_key": "../escape.js"}, "r2-object-key"),
    ({"project_root": "../../etc"}, "project-root"),
    ({"owner_identifier_label_value": ""}, "owner-identifier-label-value"),
    ({"git_revision": "--upload-pack=touch /tmp/pwned"}, "git-revision"),
    ({"git_url": "ssh://-oProxyCommand=touch%20/tmp/pwned/repo.git"}, "git-url"),
    ({"r2_object_key": "w/$(touch /tmp/pwned).js"}, "r2-object-key"),
    ({"r2_object_key": "w/a && b.js"}, "r2-object-key"),
    ({"kustomize_manifests_config_map_name": "kube-root-ca.crt"}, "kustomize-manifests-config-map-name"),
    ({"r2_endpoint_url": "http://169.254.169.254"}, "r2-endpoint-url"),  # not on allowed_r2_endpoints
    ({"r2_endpoint_url": "http://2130706433"}, "r2-endpoint-url"),  # 127.0.0.1 in decimal
    ({"git_url": "git://169.254.169.254/repo.git"}, "git-url"),  # link-local, not allowed
])
def test_bad_parameters_fail_before_anything_is_cloned_uploaded_or_written(
        overrides, parameter, pipeline_dag, git_server, connections, bucket, s3_server, s3_client, workspaces, capfd) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    repo = git_server.publish("bad-params", REPO / "examples" / "hello-worker")
    before = set(workspaces.glob("*/*")) if workspaces.exists() else set()
    try:
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url, **overrides))
    except ParamValidationError as error:  # the DAG's schema refused it: no run exists (the REST API's 400)
        assert parameter in str(error)
    else:  # a rule only setup's validation can check
        assert run.state == "failed"
        assert run.task_states["setup"] == "failed"
        assert run.task_states["checkout"] == "upstream_failed"
        assert f"Invalid parameter '{parameter}'" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}
    assert connections.objects() == {}
    after = set(workspaces.glob("*/*")) if workspaces.exists() else set()
    assert after == before, "nothing may be cloned"
    assert not Path("/tmp/pwned").exists()


def test_conf_missing_a_required_parameter_is_refused_by_the_dag_params(airflow_db, connections) -> None:
    """A DAG built for this test: in one process, dag.test() leaves each run's conf in the DAG's
    Param objects (a task process parses the DAG afresh, so runs never share them)."""
    from airflow.sdk.exceptions import ParamValidationError
    from cloudflare_worker_pipeline.pipeline import bundle_asset, pipeline_dag

    fresh_dag = pipeline_dag("build_and_upload_cloudflare_worker", asset=bundle_asset("cloudflare-worker-bundles"))
    with pytest.raises(ParamValidationError, match="r2-bucket-name"):
        fresh_dag.test(run_conf={"git-url": "https://github.com/org/repo.git"})


def test_the_failure_callback_setting_is_called_for_the_failed_task(airflow_db, git_server, connections, bucket,
                                                                    s3_server, tmp_path, monkeypatch) -> None:
    import importlib

    from airflow.dag_processing.dagbag import DagBag
    from cloudflare_worker_pipeline.example_dags import build_and_upload_cloudflare_worker as example

    record = tmp_path / "failures.txt"
    monkeypatch.setenv("CFW_TEST_FAILURES", str(record))
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__FAILURE_CALLBACK", "tests.helpers.record_failure")
    try:
        importlib.reload(example)  # the DAG is built when its module is imported: build it with the setting
        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("build_and_upload_cloudflare_worker")
        repo = git_server.publish("callback", hello_worker_variant(tmp_path, "callback", remove=("wrangler.toml",)))
        run = run_pipeline(dag, conf_for(repo.url, bucket, s3_server.endpoint_url))
    finally:
        monkeypatch.delenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__FAILURE_CALLBACK")
        importlib.reload(example)

    assert run.task_states["bundle"] == "failed"
    assert record.read_text().split() == ["bundle"], "called once, for the task that failed"
