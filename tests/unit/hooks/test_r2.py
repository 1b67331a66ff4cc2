"""R2Hook against SeaweedFS (and a fault-injecting proxy in front of it): verified puts, what is
stored, and which S3 errors are permanent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from tests.conftest import R2_ACCESS_KEY, R2_SECRET_KEY

BODY = b"export default { fetch() { return new Response('hooked'); } };"


@pytest.fixture
def r2_connection(monkeypatch: pytest.MonkeyPatch, s3_server: object) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_R2_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": R2_ACCESS_KEY, "password": R2_SECRET_KEY}))


@pytest.fixture(scope="module")
def faulty_s3(s3_server: object) -> Iterator[object]:
    from examples.local_stack.s3_proxy import S3Proxy

    proxy = S3Proxy(upstream=s3_server.endpoint_url).start()  # type: ignore[attr-defined]
    yield proxy
    proxy.stop()


def r2(endpoint: str) -> object:
    from cloudflare_worker_pipeline.hooks.r2 import R2Hook

    return R2Hook(endpoint_url=endpoint, aws_conn_id="r2_default")


def test_put_verified_stores_the_bytes_with_their_hash_and_metadata(r2_connection, s3_server, s3_client, bucket) -> None:
    hook = r2(s3_server.endpoint_url)
    stored = hook.put_verified(bucket, "w/a.js", BODY, metadata={"owner": "team=a", "commit": "c" * 40})

    digest = hashlib.sha256(BODY).hexdigest()
    assert stored.sha256 == digest and stored.size_bytes == len(BODY)
    assert stored.metadata == {"owner": "team=a", "commit": "c" * 40, "content-hash": digest}
    assert s3_client.get_object(Bucket=bucket, Key="w/a.js")["Body"].read() == BODY


def test_holds_compares_hash_and_size_and_an_absent_key_holds_nothing(r2_connection, s3_server, bucket) -> None:
    hook = r2(s3_server.endpoint_url)
    hook.put_verified(bucket, "w/b.js", BODY, metadata={})

    assert hook.holds(bucket, "w/b.js", hashlib.sha256(BODY).hexdigest(), len(BODY))
    assert not hook.holds(bucket, "w/b.js", hashlib.sha256(b"other").hexdigest(), len(BODY))
    assert not hook.holds(bucket, "w/absent.js", hashlib.sha256(BODY).hexdigest(), len(BODY))
    assert hook.stored(bucket, "w/absent.js") is None


def test_refused_credentials_are_permanent(monkeypatch, s3_server, bucket) -> None:
    from cloudflare_worker_pipeline.hooks.r2 import PermanentR2Error

    monkeypatch.setenv("AIRFLOW_CONN_R2_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": R2_ACCESS_KEY, "password": "not-the-secret"}))
    with pytest.raises(PermanentR2Error, match=rf"upload: failed: s3://{bucket}/k SignatureDoesNotMatch"):
        r2(s3_server.endpoint_url).put_verified(bucket, "k", BODY, metadata={})


def test_a_server_error_is_transient_and_a_bad_digest_permanent(r2_connection, faulty_s3, bucket) -> None:
    from cloudflare_worker_pipeline.hooks.r2 import PermanentR2Error, R2Error

    from examples.local_stack.s3_proxy import S3Fault

    hook = r2(faulty_s3.url)
    faulty_s3.inject(S3Fault("PUT", rf"/{bucket}/", 500, code="InternalError", times=5))
    with pytest.raises(R2Error, match="InternalError") as transient:
        hook.put_verified(bucket, "w/c.js", BODY, metadata={})
    assert not isinstance(transient.value, PermanentR2Error)

    faulty_s3.inject(S3Fault("PUT", rf"/{bucket}/", "corrupt", times=1))
    with pytest.raises(PermanentR2Error, match="BadDigest"):
        hook.put_verified(bucket, "w/c.js", BODY, metadata={})


def test_a_refused_connection_is_transient_and_named(r2_connection) -> None:
    from cloudflare_worker_pipeline.hooks.r2 import PermanentR2Error, R2Error

    from examples.local_stack import free_port

    with pytest.raises(R2Error, match=r"s3://b/k Connection refused") as refused:
        r2(f"http://127.0.0.1:{free_port()}").stored("b", "k")
    assert not isinstance(refused.value, PermanentR2Error)
