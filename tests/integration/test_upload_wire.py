"""What the upload sends over TLS, where botocore behaves differently than on plain-http loopback.

R2 refuses the aws-chunked trailer checksums boto3 >= 1.36 sends by default; the upload must send a
plain body with its precomputed SHA-256 in a header, and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from examples.local_stack.dag_run import run_pipeline
from tests.conftest import R2_ACCESS_KEY, R2_SECRET_KEY, REPO, SESSION_DIR
from tests.helpers import conf_for, objects_in


@pytest.fixture(scope="module")
def tls_front(s3_server):
    from examples.local_stack.s3_proxy import S3Proxy

    proxy = S3Proxy(upstream=s3_server.endpoint_url, tls_directory=SESSION_DIR / "tls").start()
    yield proxy
    proxy.stop()


def test_upload_over_https_sends_a_plain_body_with_a_sha256_header(pipeline_dag, git_server, connections, bucket,
                                                                   s3_client, tls_front, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_R2_DEFAULT", json.dumps({
        "conn_type": "aws", "login": R2_ACCESS_KEY, "password": R2_SECRET_KEY,
        "extra": {"verify": str(tls_front.ca_file)},
    }))
    repo = git_server.publish("tls-upload", REPO / "examples" / "hello-worker")
    tls_front.requests.clear()
    run = run_pipeline(pipeline_dag, conf_for(repo.url, bucket, tls_front.url))

    assert run.state == "success", run.task_states
    assert run.xcom("upload")["artifact_url"].startswith("https://127.0.0.1:")
    puts = {r.path.split("?")[0]: r for r in tls_front.requests if r.method == "PUT"}
    assert sorted(puts) == [f"/{bucket}/my-worker/build.js{suffix}" for suffix in (
        "", ".egress.json", ".files.json", ".intoto.json", ".intoto.jsonl", ".map")], \
        "the bundle, its source map, their manifest, the egress log, the provenance statement and its signature"
    put = puts[f"/{bucket}/my-worker/build.js"]
    assert tls_front.requests.index(put) > max(tls_front.requests.index(r) for r in puts.values() if r is not put), \
        "the bundle goes last, after what it needs"
    headers = {key.lower(): value for key, value in put.headers.items()}
    body = objects_in(s3_client, bucket)["my-worker/build.js"]
    assert put.body == body, "the body on the wire is the bundle itself, not aws-chunked frames"
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert "x-amz-trailer" not in headers
    assert not headers.get("x-amz-content-sha256", "").startswith("STREAMING")
    assert not [h for h in headers if h.startswith("x-amz-checksum-") and h != "x-amz-checksum-sha256"], \
        "no CRC checksums R2 would reject"
    assert headers["content-length"] == str(len(body))
