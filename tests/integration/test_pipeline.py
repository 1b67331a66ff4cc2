"""The DAG end to end with ``dag.test()``: real git (git daemon), the npm registry, yarn, pnpm,
Wrangler 4.86.0, SeaweedFS as S3 and the Kubernetes API emulator, all on 127.0.0.1.

Assertions read what the servers hold, not what was called.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from examples.local_stack.dag_run import fast_retries, run_pipeline
from tests.conftest import FIXTURES, R2_SECRET_KEY, REPO
from tests.helpers import (
    NAMESPACE,
    OWNER,
    assert_pinned,
    assert_published,
    conf_for,
    failure_output,
    objects_in,
)


def test_npm_worker_is_bundled_uploaded_and_recorded(pipeline_dag, git_server, connections, bucket, s3_server, s3_client,
                                                      tmp_path, capfd) -> None:
    repo = git_server.publish("hello-worker", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    body = assert_published(run, s3_client, connections, bucket, "my-worker/build.js")
    assert b"Hello from a Worker built by Airflow" in body
    assert_pinned(body, "hello-worker")

    # The egress log: git reached the git server, npm the registry, and nothing was refused.
    log = json.loads(objects_in(s3_client, bucket)["my-worker/build.js.egress.json"])
    checkout, install = log["stages"]["checkout"], log["stages"]["install"]
    assert checkout["recorded"] and install["recorded"]
    assert [(c["host"], c["port"], c["allowed"]) for c in checkout["connections"]] == [
        ("127.0.0.1", urlsplit(repo.url).port, True)]
    assert checkout["connections"][0]["bytes_in"] > 0
    assert install["connections"] and all(c["allowed"] and c["port"] == 443 for c in install["connections"])
    assert sum(c["bytes_in"] for c in install["connections"]) > 100_000, "hono and wrangler's tarballs came through"
    assert run.xcom("install")["egress"] == install["connections"]
    assert log["commit"] == repo.head() and log["object"] == "my-worker/build.js"
    statement = json.loads(objects_in(s3_client, bucket)["my-worker/build.js.intoto.json"])
    assert statement["predicate"]["runDetails"]["byproducts"] == [{
        "name": "my-worker/build.js.egress.json", "digest": {"sha256": run.xcom("upload")["egress_log"]["sha256"]}}]
    assert run.xcom("checkout")["commit_sha"] == repo.head()
    assert run.xcom("install")["package_manager"] == "npm"
    lockfile = (REPO / "examples" / "hello-worker" / "package-lock.json").read_bytes()
    assert run.xcom("install")["toolchain"] == {"package-manager-version": run.xcom("install")["toolchain"][
        "package-manager-version"], "node-version": subprocess.run(["node", "--version"], capture_output=True, text=True
                                                                   ).stdout.strip(),
        "lockfile": "package-lock.json", "lockfile-sha256": hashlib.sha256(lockfile).hexdigest()}
    assert run.xcom("bundle")["bundle_path"] == "dist/index.js"
    assert run.xcom("upload")["artifact_url"] == f"{s3_server.endpoint_url}/{bucket}/my-worker/build.js"
    assert run.links["upload/R2ObjectLink"] == run.xcom("upload")["artifact_url"]
    assert run.links["checkout/CommitLink"] == "", "a git:// URL has no web page to link to"

    manifests = connections.get(NAMESPACE, "my-worker-manifests")
    assert set(manifests["data"]) == {"dev", "prod"}
    for overlay in ("dev", "prod"):
        expected = subprocess.run(["kubectl", "kustomize", str(REPO / "examples/hello-worker/_kustomize/overlays" / overlay)],
                                  check=True, capture_output=True).stdout
        assert base64.b64decode(manifests["data"][overlay]) == expected
    assert manifests["metadata"]["labels"][OWNER[0]] == OWNER[1]
    traceability = {"cloudflare-worker-pipeline.planton.cloud/commit": repo.head(),
                    "cloudflare-worker-pipeline.planton.cloud/repository": repo.url,
                    "cloudflare-worker-pipeline.planton.cloud/dag-run": f"build_and_upload_cloudflare_worker/{run.run_id}",
                    "cloudflare-worker-pipeline.planton.cloud/owner": f"{OWNER[0]}={OWNER[1]}"}
    assert connections.get(NAMESPACE, "my-worker-manifests")["metadata"]["annotations"] == traceability
    bundle = run.xcom("bundle")
    assert connections.get(NAMESPACE, "my-worker-artifact-metadata")["metadata"]["annotations"] == {
        **traceability, "cloudflare-worker-pipeline.planton.cloud/gzip-bytes": str(bundle["gzip_bytes"]),
        "cloudflare-worker-pipeline.planton.cloud/brotli-bytes": str(bundle["brotli_bytes"]),
        "cloudflare-worker-pipeline.planton.cloud/source-map": "my-worker/build.js.map",
        "cloudflare-worker-pipeline.planton.cloud/modules": "",
        "cloudflare-worker-pipeline.planton.cloud/provenance": "my-worker/build.js.intoto.json",
        "cloudflare-worker-pipeline.planton.cloud/provenance-sha256": run.xcom("upload")["provenance"]["sha256"],
        "cloudflare-worker-pipeline.planton.cloud/egress-log": "my-worker/build.js.egress.json",
        "cloudflare-worker-pipeline.planton.cloud/egress-log-sha256": run.xcom("upload")["egress_log"]["sha256"],
        "cloudflare-worker-pipeline.planton.cloud/provenance-signature": "my-worker/build.js.intoto.jsonl"}
    assert all(ctype == "application/apply-patch+yaml" for method, _, ctype in connections.requests if method == "PATCH")

    kubeconfig = connections.write_kubeconfig(tmp_path / "kubeconfig")
    listed = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "configmaps", "-n", NAMESPACE,
                             "-l", f"{OWNER[0]}={OWNER[1]}", "-o", "name"], check=True, capture_output=True, text=True)
    assert listed.stdout.split() == ["configmap/my-worker-artifact-metadata", "configmap/my-worker-manifests"]
    assert R2_SECRET_KEY not in failure_output(capfd) + repr(run.xcoms), "the R2 secret never reaches logs or XCom"


def test_the_same_build_again_skips_install_bundle_and_upload_and_applies_the_config_maps(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client) -> None:
    repo = git_server.publish("rerun-worker", REPO / "examples" / "hello-worker")
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)
    first = run_pipeline(pipeline_dag, conf)
    first_cm = connections.get(NAMESPACE, "my-worker-artifact-metadata")
    stored = s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")
    second = run_pipeline(pipeline_dag, conf)
    second_cm = connections.get(NAMESPACE, "my-worker-artifact-metadata")

    assert first.state == second.state == "success"
    uploaded = first.xcom("upload")
    assert second.xcom("checkout")["stored_build"] == {
        "key": "my-worker/build.js", "sha256": uploaded["sha256"], "size_bytes": uploaded["size_bytes"],
        "files": uploaded["files"], "provenance": uploaded["provenance"], "egress_log": uploaded["egress_log"],
        "signature": uploaded["signature"], "gzip_bytes": uploaded["gzip_bytes"],
        "brotli_bytes": uploaded["brotli_bytes"]}
    assert {task: second.task_states[task] for task in ("install", "bundle", "typecheck", "upload")} == dict.fromkeys(
        ("install", "bundle", "typecheck", "upload"), "skipped"), "Airflow shows the build as skipped"
    assert second.xcom("publish")["artifact"] == {**first.xcom("upload"), "replaced_sha256": None, "skipped": True}
    assert second.links["publish/R2ObjectLink"] == first.links["upload/R2ObjectLink"]
    assert s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")["LastModified"] == stored["LastModified"]
    assert first_cm["data"] == second_cm["data"], "the ConfigMaps say what a full run would"
    assert first_cm["metadata"]["uid"] == second_cm["metadata"]["uid"], "updated in place, not recreated"
    assert second_cm["metadata"]["annotations"]["cloudflare-worker-pipeline.planton.cloud/dag-run"].endswith(second.run_id)
    assert set(connections.get(NAMESPACE, "my-worker-manifests")["data"]) == {"dev", "prod"}

    forced = run_pipeline(pipeline_dag, {**conf, "force-rebuild": "true"})
    assert forced.state == "success" and not forced.xcom("upload")["skipped"]
    assert forced.xcom("install")["package_manager"] == "npm"
    assert s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")["LastModified"] >= stored["LastModified"]
    assert forced.xcom("upload")["sha256"] == first.xcom("upload")["sha256"], "the same inputs, the same bytes"


def test_a_commit_outside_the_project_skips_the_build_and_one_inside_builds_again(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, tmp_path) -> None:
    monorepo = tmp_path / "monorepo"
    shutil.copytree(REPO / "examples" / "hello-worker", monorepo / "services" / "hello")
    repo = git_server.publish("fingerprint-worker", monorepo)
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url, project_root="services/hello")
    first = run_pipeline(pipeline_dag, conf)
    repo.commit({"docs/CHANGELOG.md": "Touches nothing the bundle is built from.\n"}, "docs only")
    outside_commit = repo.head()
    outside = run_pipeline(pipeline_dag, conf)
    repo.commit({"services/hello/src/extra.ts": "export const extra = 1;\n"}, "a change inside the project")
    inside = run_pipeline(pipeline_dag, conf)

    assert first.state == outside.state == inside.state == "success"
    assert outside.xcom("checkout")["fingerprint"] == first.xcom("checkout")["fingerprint"]
    assert outside.task_states["upload"] == "skipped", "the object already holds this build"
    assert outside.xcom("publish")["artifact"]["commit_sha"] == outside_commit, "the ConfigMaps name the commit built"
    assert inside.xcom("checkout")["stored_build"] is None and not inside.xcom("upload")["skipped"]
    assert inside.xcom("checkout")["fingerprint"] != first.xcom("checkout")["fingerprint"]
    assert s3_client.head_object(Bucket=bucket, Key="my-worker/build.js")["Metadata"]["commit"] == repo.head()


@pytest.mark.parametrize("fixture,manager", [
    ("yarn-classic", "yarn-classic"),
    ("yarn-berry", "yarn-berry"),  # node-modules linker
    ("yarn-berry-pnp", "yarn-berry"),  # Plug'n'Play: no node_modules/.bin, Wrangler runs as `yarn wrangler`
    ("pnpm", "pnpm"),
    ("bun", "bun"),  # bun.lock, as wrangler-action and Workers Builds detect it
])
def test_each_package_manager_builds_the_worker_and_leaves_nothing_on_the_worker(
        fixture, manager, pipeline_dag, git_server, connections, bucket, s3_server, s3_client) -> None:
    before = worker_leftovers()
    repo = git_server.publish(fixture, FIXTURES / "projects" / fixture)
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))
    body = assert_published(run, s3_client, connections, bucket, "my-worker/build.js")
    assert run.xcom("install")["package_manager"] == manager
    assert b"Hello from a Worker built by Airflow" in body
    assert_pinned(body, fixture)
    assert worker_leftovers() == before, "tool caches, shims and logs stay in the run's workspace"


def worker_leftovers() -> set[str]:
    """What package managers and Wrangler leave in a worker's temp directory and home when unconfined."""
    temp, home = Path(tempfile.gettempdir()), Path.home()
    patterns = ["yarn--*", "v8-compile-cache*", "node-compile-cache*", "wrangler*", "xfs-*", "corepack*", "bun*"]
    found = {str(path) for pattern in patterns for path in temp.glob(pattern)}
    for logs in (home / ".config/.wrangler/logs", home / ".wrangler/logs", home / ".npm/_logs", home / ".bun/install/cache"):
        found |= {str(path) for path in logs.glob("*")} if logs.is_dir() else set()
    return found


def test_monorepo_workspace_with_sparse_checkout_jsonc_and_a_pinned_commit(pipeline_dag, git_server, connections, bucket,
                                                                           s3_server, s3_client) -> None:
    repo = git_server.publish("monorepo", FIXTURES / "projects" / "pnpm-monorepo")
    pinned = repo.head()
    repo.commit({"services/api-worker/src/index.ts": "export default {};\n"}, "a later commit the build must not see")
    run = run_pipeline(pipeline_dag, conf_for(
        repo.url, bucket, s3_server.endpoint_url,
        git_revision=pinned[:12], git_branch="main",
        project_root="services/api-worker", package_manager_directory=".",
        sparse_checkout_directories="services/api-worker,packages",
        r2_object_key="api-worker/{short_sha}/{commit_sha}.js",
    ))
    body = assert_published(run, s3_client, connections, bucket, f"api-worker/{pinned[:12]}/{pinned}.js")
    assert run.xcom("checkout")["commit_sha"] == pinned
    assert run.xcom("install")["package_manager"] == "pnpm"
    assert b"from the monorepo" in body, "the workspace:* dependency is bundled in"
    assert_pinned(body, "pnpm-monorepo")
    assert set(connections.get(NAMESPACE, "my-worker-manifests")["data"]) == {"staging"}


def test_without_a_kubernetes_connection_config_maps_are_written_as_manifest_files(
        pipeline_dag, git_server, no_kubernetes_connection, bucket, s3_server, s3_client, kube_api) -> None:
    kube_api.clear()
    repo = git_server.publish("embedded-default", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.state == "success", run.task_states
    artifact_file = no_kubernetes_connection / NAMESPACE / "my-worker-artifact-metadata.yaml"
    assert run.xcom("publish")["artifact_config_map"] == str(artifact_file)
    artifact = yaml.safe_load(artifact_file.read_text())
    body = objects_in(s3_client, bucket)["my-worker/build.js"]
    assert artifact == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "my-worker-artifact-metadata", "namespace": NAMESPACE,
                     "labels": {"app.kubernetes.io/managed-by": "planton-cloud", OWNER[0]: OWNER[1]},
                     "annotations": {"cloudflare-worker-pipeline.planton.cloud/commit": repo.head(),
                                     "cloudflare-worker-pipeline.planton.cloud/repository": repo.url,
                                     "cloudflare-worker-pipeline.planton.cloud/dag-run":
                                         f"build_and_upload_cloudflare_worker/{run.run_id}",
                                     "cloudflare-worker-pipeline.planton.cloud/owner": f"{OWNER[0]}={OWNER[1]}",
                                     "cloudflare-worker-pipeline.planton.cloud/gzip-bytes": str(run.xcom("bundle")["gzip_bytes"]),
                                     "cloudflare-worker-pipeline.planton.cloud/brotli-bytes":
                                         str(run.xcom("bundle")["brotli_bytes"]),
                                     "cloudflare-worker-pipeline.planton.cloud/source-map": "my-worker/build.js.map",
                                     "cloudflare-worker-pipeline.planton.cloud/modules": "",
                                     "cloudflare-worker-pipeline.planton.cloud/provenance": "my-worker/build.js.intoto.json",
                                     "cloudflare-worker-pipeline.planton.cloud/provenance-sha256":
                                         run.xcom("upload")["provenance"]["sha256"],
                                     "cloudflare-worker-pipeline.planton.cloud/egress-log":
                                         "my-worker/build.js.egress.json",
                                     "cloudflare-worker-pipeline.planton.cloud/egress-log-sha256":
                                         run.xcom("upload")["egress_log"]["sha256"],
                                     "cloudflare-worker-pipeline.planton.cloud/provenance-signature":
                                         "my-worker/build.js.intoto.jsonl"}},
        "data": {"bucket": bucket, "path": "my-worker/build.js", "content-hash": hashlib.sha256(body).hexdigest(),
                 "size-bytes": str(len(body))},
    }
    manifests = yaml.safe_load((no_kubernetes_connection / NAMESPACE / "my-worker-manifests.yaml").read_text())
    assert set(manifests["data"]) == {"dev", "prod"}
    assert kube_api.objects() == {}


def test_a_missing_kubernetes_connection_fails_the_run_before_anything_is_built(
        pipeline_dag, git_server, no_kubernetes_connection, bucket, s3_server, s3_client, monkeypatch, capfd) -> None:
    """configmap_destination = cluster (the default) never falls back to files on some worker."""
    monkeypatch.setenv("AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__CONFIGMAP_DESTINATION", "cluster")
    repo = git_server.publish("no-connection", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert run.task_states["setup"] == "failed"
    assert run.task_states["checkout"] == "upstream_failed"
    assert ("configmap_destination is cluster, but Airflow has no connection 'kubernetes_default'"
            in failure_output(capfd))
    assert objects_in(s3_client, bucket) == {}
    assert not no_kubernetes_connection.exists(), "no manifest file written instead"


def test_a_transient_kubernetes_api_error_is_retried_and_the_metadata_lands(pipeline_dag, git_server, connections, bucket,
                                                                           s3_server, s3_client) -> None:
    from examples.local_stack.kube_api import Fault

    fault = connections.inject(Fault("POST", r"/namespaces/[^/]+/configmaps$", 500))  # the first write creates it
    repo = git_server.publish("api-500", REPO / "examples" / "hello-worker")
    with fast_retries(pipeline_dag, "publish"):
        run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url))

    assert fault.times == 0, "the fault was hit"
    assert_published(run, s3_client, connections, bucket, "my-worker/build.js")


def test_the_publish_emits_an_asset_event_describing_the_object(pipeline_dag, git_server, connections, bucket, s3_server,
                                                               s3_client) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    repo = git_server.publish("asset-event", REPO / "examples" / "hello-worker")
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, s3_server.endpoint_url, r2_object_key="w/{commit_sha}.js"))
    assert run.state == "success", run.task_states

    with create_session() as session:
        events = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                  .filter(AssetModel.name == "cloudflare-worker-bundles", AssetEvent.source_run_id == run.run_id).all())
        assert len(events) == 1
        extra = events[0].extra
    commit = repo.head()
    body = objects_in(s3_client, bucket)[f"w/{commit}.js"]
    assert extra == {"artifact_url": f"{s3_server.endpoint_url}/{bucket}/w/{commit}.js", "bucket": bucket,
                     "key": f"w/{commit}.js", "sha256": hashlib.sha256(body).hexdigest(), "size_bytes": len(body),
                     "commit_sha": commit, "replaced_sha256": None, "skipped": False, "git_url": repo.url,
                     "files": run.xcom("upload")["files"], "provenance": run.xcom("upload")["provenance"],
                     "egress_log": run.xcom("upload")["egress_log"], "signature": run.xcom("upload")["signature"],
                     "gzip_bytes": run.xcom("bundle")["gzip_bytes"],
                     "brotli_bytes": run.xcom("bundle")["brotli_bytes"]}
    assert [f["key"] for f in extra["files"]] == [f"w/{commit}.js.map"]
