"""The platform signs what it built, and nothing unverified is published (issue 20, item 5).

``upload`` stores the statement's DSSE envelope (``<key>.intoto.jsonl``), signed with the key of
the signing connection; ``publish`` verifies the release before any ConfigMap names it, and
``python -m cloudflare_worker_pipeline.verify`` lets a reader do the same with the public key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cloudflare_worker_pipeline.provenance import provenance_key
from cloudflare_worker_pipeline.signing import signature_key
from cloudflare_worker_pipeline.verify import main as verify_main

from examples.local_stack.dag_run import run_pipeline
from examples.local_stack.pipeline_env import PUBLIC_KEY
from tests.conftest import REPO, SESSION_DIR
from tests.helpers import NAMESPACE, OWNER, SETTING, conf_for, failure_output, objects_in

KEY = "my-worker/build.js"


def verify(endpoint: str, bucket: str, *extra: str) -> int:
    return verify_main(["--endpoint-url", endpoint, "--bucket", bucket, "--key", KEY,
                        "--public-key", str(SESSION_DIR / PUBLIC_KEY), *extra])


@pytest.fixture
def signed_build(pipeline_dag, git_server, connections, bucket, s3_server):
    repo = git_server.publish("signed", REPO / "examples" / "hello-worker")
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)
    run = run_pipeline(pipeline_dag, conf)
    assert run.state == "success", run.task_states
    return repo, conf, run


def test_a_build_is_signed_and_verifies_with_the_platforms_public_key(signed_build, bucket, s3_server, s3_client,
                                                                      connections, capsys) -> None:
    repo, _, run = signed_build
    stored = objects_in(s3_client, bucket)
    envelope = json.loads(stored[signature_key(KEY)])
    assert envelope["payloadType"] == "application/vnd.in-toto+json" and len(envelope["signatures"]) == 1
    assert run.xcom("upload")["signature"]["key"] == signature_key(KEY)
    annotations = connections.get(NAMESPACE, "my-worker-artifact-metadata")["metadata"]["annotations"]
    assert annotations["cloudflare-worker-pipeline.planton.cloud/provenance-signature"] == signature_key(KEY)

    owner = f"{OWNER[0]}={OWNER[1]}"
    capsys.readouterr()  # the run's output
    assert verify(s3_server.endpoint_url, bucket, "--commit", repo.head(), "--owner", owner) == 0
    out = capsys.readouterr().out  # the JSON, after what the hook logged
    verified, _ = json.JSONDecoder().raw_decode(out[out.index('{\n "'):])
    assert (verified["verified"], verified["commit"], verified["owner"], verified["repository"]) == (
        True, repo.head(), owner, repo.url)
    assert set(verified["subjects"]) == {KEY, *(f["key"] for f in run.xcom("upload")["files"])}

    # The module entry point, as a reader runs it.
    done = subprocess.run([sys.executable, "-m", "cloudflare_worker_pipeline.verify", "--endpoint-url",
                           s3_server.endpoint_url, "--bucket", bucket, "--key", KEY, "--public-key",
                           str(SESSION_DIR / PUBLIC_KEY), "--commit", repo.head()], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["verified"] is True, done.stderr[-2000:]


@pytest.mark.parametrize("extra,says", [
    (("--commit", "0" * 40), "was signed for commit"),
    (("--owner", "planton.cloud/service-id=svc-other"), "was signed for owner"),
])
def test_another_commit_or_owner_does_not_verify(signed_build, bucket, s3_server, capsys, extra, says) -> None:
    assert verify(s3_server.endpoint_url, bucket, *extra) == 1
    assert says in capsys.readouterr().err


def test_another_key_does_not_verify(signed_build, bucket, s3_server, tmp_path, capsys) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pub.pem"
    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert verify_main(["--endpoint-url", s3_server.endpoint_url, "--bucket", bucket, "--key", KEY,
                        "--public-key", str(other)]) == 1
    assert "the signature does not verify" in capsys.readouterr().err


def test_a_tampered_stored_file_fails_verify_and_the_rerun_does_not_publish_it(
        signed_build, pipeline_dag, bucket, s3_server, s3_client, connections, capfd) -> None:
    _, conf, run = signed_build
    source_map = next(f["key"] for f in run.xcom("upload")["files"] if f["kind"] == "source-map")
    s3_client.put_object(Bucket=bucket, Key=source_map, Body=b'{"version": 3, "sources": ["evil.js"]}',
                         Metadata=s3_client.head_object(Bucket=bucket, Key=source_map)["Metadata"])
    before = connections.get(NAMESPACE, "my-worker-artifact-metadata")

    capfd.readouterr()
    assert verify(s3_server.endpoint_url, bucket) == 1
    assert f"{source_map} no longer holds the signed sha256" in capfd.readouterr().err

    statement = s3_client.get_object(Bucket=bucket, Key=provenance_key(KEY))["Body"].read()
    rerun = run_pipeline(pipeline_dag, conf)  # the bundle's own metadata still names the build: a skip
    assert rerun.task_states["publish"] == "failed", rerun.task_states
    output = failure_output(capfd)
    assert f"{source_map} (source-map of {KEY}) is missing or no longer holds" in output, output[-2000:]
    assert "not publishing" in output
    assert connections.get(NAMESPACE, "my-worker-artifact-metadata") == before
    assert s3_client.get_object(Bucket=bucket, Key=provenance_key(KEY))["Body"].read() == statement


def test_without_the_signing_connection_runs_are_refused_unless_unsigned_output_is_allowed(
        pipeline_dag, git_server, connections, bucket, s3_server, s3_client, monkeypatch, capfd) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT")
    repo = git_server.publish("unsigned", REPO / "examples" / "hello-worker")
    conf = conf_for(repo.url, bucket, s3_server.endpoint_url)

    refused = run_pipeline(pipeline_dag, conf)

    assert refused.task_states["setup"] == "failed", refused.task_states
    assert "provenance_signing_conn_id: connection 'provenance_signing_default' does not exist" in failure_output(capfd)
    assert objects_in(s3_client, bucket) == {}

    monkeypatch.setenv(SETTING + "ALLOW_UNSIGNED_PROVENANCE", "True")
    allowed = run_pipeline(pipeline_dag, conf)
    assert allowed.state == "success", allowed.task_states
    stored = objects_in(s3_client, bucket)
    assert provenance_key(KEY) in stored and signature_key(KEY) not in stored
    assert allowed.xcom("upload")["signature"] is None
