"""One service's run must not replace another's object or ConfigMaps, nor a ConfigMap this
pipeline does not manage. Refused before anything is built when the target is known up front,
and again at each write."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from cloudflare_worker_pipeline.config_maps import build_annotations, config_map, config_map_store
from cloudflare_worker_pipeline.parameters import MANAGED_BY_LABEL
from cloudflare_worker_pipeline.settings import PipelineSettings

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import REPO
from tests.helpers import NAMESPACE, OWNER, SETTING, conf_for, failure_output, objects_in

OTHER = "planton.cloud/service-id=svc-other"


def existing_config_map(name: str, labels: dict[str, str], owner: str | None) -> None:
    annotations = build_annotations(commit="0" * 40, git_url="https://example.invalid/r.git", dag_id="d", run_id="r",
                                    owner=owner or "")
    if owner is None:
        annotations = {}
    config_map_store(PipelineSettings.from_airflow_config()).write(
        config_map(name, NAMESPACE, labels, {"bucket": "theirs"}, annotations), logging.getLogger("setup"))


@pytest.mark.parametrize("labels,owner,says", [
    ({MANAGED_BY_LABEL[0]: MANAGED_BY_LABEL[1], "planton.cloud/service-id": "svc-other"}, OTHER,
     "belongs to another owner (planton.cloud/service-id=svc-other)"),
    ({MANAGED_BY_LABEL[0]: MANAGED_BY_LABEL[1], "planton.cloud/service-id": "svc-other"}, None,  # before owners were recorded
     "belongs to another owner (planton.cloud/service-id=svc-other)"),
    ({"app.kubernetes.io/managed-by": "helm"}, None, "is not managed by this pipeline"),
])
def test_a_config_map_of_another_owner_is_refused_before_anything_is_built(
        labels, owner, says, pipeline_dag, git_server, connections, bucket, s3_server, s3_client, capfd) -> None:
    existing_config_map("my-worker-manifests", labels, owner)
    before = connections.get(NAMESPACE, "my-worker-manifests")
    repo = git_server.publish("cm-owner", REPO / "examples" / "hello-worker")

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["setup"] == "failed"
    output = failure_output(capfd)
    assert "Invalid parameter 'kustomize-manifests-config-map-name'" in output and says in output
    assert connections.get(NAMESPACE, "my-worker-manifests") == before
    assert connections.get(NAMESPACE, "my-worker-artifact-metadata") is None
    assert objects_in(s3_client, bucket) == {}


def test_an_object_of_another_owner_is_refused_before_anything_is_built(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, capfd) -> None:
    s3_client.put_object(Bucket=bucket, Key="my-worker/build.js", Body=b"theirs", Metadata={"owner": OTHER})
    repo = git_server.publish("object-owner", REPO / "examples" / "hello-worker")

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["setup"] == "failed"
    assert "Invalid parameter 'r2-object-key'" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {"my-worker/build.js": b"theirs"}
    assert connections.objects() == {}


def test_an_object_of_another_owner_at_a_commit_key_is_refused_at_upload(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, capfd) -> None:
    repo = git_server.publish("object-owner-commit", REPO / "examples" / "hello-worker")
    key = f"w/{repo.head()}.js"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"theirs", Metadata={"owner": OTHER})

    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url, r2_object_key="w/{commit_sha}.js"))

    assert run.task_states["upload"] == "failed", run.task_states
    assert f"upload: failed: s3://{bucket}/{key} belongs to another owner ({OTHER})" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {key: b"theirs"}
    assert connections.get(NAMESPACE, "my-worker-artifact-metadata") is None


def test_what_a_run_writes_records_its_owner_so_the_same_owner_may_write_again(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client) -> None:
    repo = git_server.publish("owner-recorded", REPO / "examples" / "hello-worker")
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)
    assert run_pipeline(pipeline_dag, conf).state == "success"
    assert run_pipeline(pipeline_dag, conf).state == "success"

    owner = f"{OWNER[0]}={OWNER[1]}"
    head = s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")
    assert head["Metadata"]["owner"] == owner and head["Metadata"]["commit"] == repo.head()
    for name in ("my-worker-artifact-metadata", "my-worker-manifests"):
        assert connections.get(NAMESPACE, name)["metadata"]["annotations"][
            "cloudflare-worker-pipeline.planton.cloud/owner"] == owner


def test_manifest_files_are_owned_the_same_way(pipeline_dag, git_server, no_kubernetes_connection, bucket, s3_server,
                                               capfd) -> None:
    repo = git_server.publish("owner-files", REPO / "examples" / "hello-worker")
    assert run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url)).state == "success"
    other = conf_for(repo.url, bucket, s3_server.endpoint_url, owner_identifier_label_value="svc-other",
                     r2_object_key="other/build.js")

    run = run_pipeline(pipeline_dag, other)

    assert run.task_states["setup"] == "failed"
    assert f"belongs to another owner ({OWNER[0]}={OWNER[1]})" in failure_output(capfd)


def test_an_object_without_owner_metadata_is_not_replaced_unless_the_deployment_adopts_it(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, monkeypatch, capfd) -> None:
    s3_client.put_object(Bucket=bucket, Key="my-worker/build.js", Body=b"another tool's", Metadata={})
    repo = git_server.publish("unowned-object", REPO / "examples" / "hello-worker")
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)

    refused = run_pipeline(pipeline_dag, conf)

    assert refused.task_states["setup"] == "failed", refused.task_states
    output = failure_output(capfd)
    assert "Invalid parameter 'r2-object-key'" in output and "exists without owner metadata" in output, output[-2000:]
    assert objects_in(s3_client, bucket) == {"my-worker/build.js": b"another tool's"}

    monkeypatch.setenv(SETTING + "ADOPT_UNOWNED_OBJECTS", "True")
    assert run_pipeline(pipeline_dag, conf).state == "success"
    assert s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")["Metadata"]["owner"] == f"{OWNER[0]}={OWNER[1]}"


def test_a_twin_repositorys_build_is_never_skipped_to(pipeline_dag, git_server, connections, bucket, s3_server,
                                                       s3_client) -> None:
    ours = git_server.publish("twin-ours", REPO / "examples" / "hello-worker")
    twin = git_server.publish("twin-theirs", REPO / "examples" / "hello-worker")  # the same files, another URL
    assert run_pipeline(pipeline_dag, conf_for(twin.url, bucket, s3_server.endpoint_url)).state == "success"
    assert s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")["Metadata"]["repository"] == twin.url

    run = run_pipeline(pipeline_dag, conf_for(ours.url, bucket, s3_server.endpoint_url))

    assert run.state == "success"
    assert run.task_states["upload"] == "success", run.task_states  # built and uploaded, not skipped to the twin's
    head = s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")["Metadata"]
    assert (head["repository"], head["commit"]) == (ours.url, ours.head())


def test_force_rebuild_does_not_replace_another_repositorys_build(pipeline_dag, git_server, connections, bucket,
                                                                  s3_server, s3_client, capfd) -> None:
    first = git_server.publish("force-first", REPO / "examples" / "hello-worker")
    second = git_server.publish("force-second", REPO / "examples" / "hello-worker")
    assert run_pipeline(pipeline_dag, conf_for(first.url, bucket, s3_server.endpoint_url)).state == "success"
    before = objects_in(s3_client, bucket)

    run = run_pipeline(pipeline_dag, {**conf_for(second.url, bucket, s3_server.endpoint_url), "force-rebuild": "true"})

    assert run.task_states["setup"] == "failed", run.task_states
    output = failure_output(capfd)
    assert f"was built from another repository ({first.url})" in output, output[-2000:]
    assert objects_in(s3_client, bucket) == before


def tenant_map(tmp_path, **callers: list[str]) -> str:
    """Teams A and B, each granted its own repositories, key prefix and ConfigMap names."""
    grants = {}
    for team in ("team-a", "team-b"):
        grants[f"{OWNER[0]}={team}"] = {"repositories": [f"git://127.0.0.1:*/{team}-*.git"],
                                        "r2-object-key-prefixes": [f"{team}/"], "config-map-names": [f"{team}-*"],
                                        **({"callers": callers[team.replace("-", "_")]} if team.replace("-", "_") in callers
                                           else {})}
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(grants))
    return str(path)


def team_conf(repo_url: str, bucket: str, endpoint: str, owner: str, team: str, **overrides: str) -> dict[str, str]:
    return conf_for(repo_url, bucket, endpoint, owner_identifier_label_value=owner, r2_object_key=f"{team}/worker.js",
                    worker_script_artifact_config_map_name=f"{team}-artifact",
                    kustomize_manifests_config_map_name=f"{team}-manifests", **overrides)


def test_another_owners_value_is_refused_for_this_repository(pipeline_dag, git_server, connections, bucket, s3_server,
                                                             s3_client, tmp_path, monkeypatch, capfd) -> None:
    """Issue 20: team A's run once claimed team B's owner value and replaced B's object and
    ConfigMaps. Under the deployment's tenant map, B's value is refused for A's repository, and
    so is an additional worker writing under B's prefix; B's release stays as it was."""
    monkeypatch.setenv(SETTING + "TENANTS", tenant_map(tmp_path))
    theirs = git_server.publish("team-b-worker", REPO / "examples" / "hello-worker")
    assert run_pipeline(pipeline_dag, team_conf(theirs.url, bucket, s3_server.endpoint_url, "team-b", "team-b")).state \
        == "success", "team B builds its own repository under its own grants"
    b_release = objects_in(s3_client, bucket), connections.objects()
    ours = git_server.publish("team-a-worker", REPO / "examples" / "hello-worker")

    claims_b = run_pipeline(pipeline_dag, team_conf(ours.url, bucket, s3_server.endpoint_url, "team-b", "team-b"))

    assert claims_b.task_states["setup"] == "failed", claims_b.task_states
    output = failure_output(capfd)
    assert "Invalid parameter 'owner-identifier-label-value'" in output, output[-2000:]
    assert f"grants this repository to: {OWNER[0]}=team-a" in output
    assert (objects_in(s3_client, bucket), connections.objects()) == b_release

    extra = [{"project-root": "examples-copy", "r2-object-key": "team-b/worker.js",
              "worker-script-artifact-config-map-name": "team-a-second"}]
    sneaks_in = run_pipeline(pipeline_dag, team_conf(ours.url, bucket, s3_server.endpoint_url, "team-a", "team-a",
                                                     additional_workers=json.dumps(extra)))

    assert sneaks_in.task_states["setup"] == "failed", sneaks_in.task_states
    assert "Invalid parameter 'additional-workers[1].r2-object-key'" in failure_output(capfd)
    assert (objects_in(s3_client, bucket), connections.objects()) == b_release


def test_a_caller_the_tenant_map_does_not_list_is_refused(pipeline_dag, git_server, connections, bucket, s3_server,
                                                          s3_client, tmp_path, monkeypatch, capfd) -> None:
    """``callers`` binds who may trigger an owner's builds: the run's real triggering user (here
    dag.test's ``dag_test``), read from the DAG run."""
    repo = git_server.publish("team-a-callers", REPO / "examples" / "hello-worker")
    conf = team_conf(repo.url, bucket, s3_server.endpoint_url, "team-a", "team-a")
    monkeypatch.setenv(SETTING + "TENANTS", tenant_map(tmp_path, team_a=["service-catalogue"]))

    run = run_pipeline(pipeline_dag, conf)

    assert run.task_states["setup"] == "failed", run.task_states
    assert "'dag_test', who triggered this run" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {} and connections.objects() == {}
    monkeypatch.setenv(SETTING + "TENANTS", tenant_map(tmp_path, team_a=["service-catalogue", "dag_test"]))
    assert run_pipeline(pipeline_dag, conf).state == "success"
