"""Two runs building the same object at once end with a consistent pair: the artifact ConfigMap
describes the object actually stored. The interleaving that could break it is forced here, against
the real S3 server and the API emulator."""

from __future__ import annotations

import base64
import hashlib
import logging

from tests.helpers import NAMESPACE

LOG = logging.getLogger(__name__)


def put(s3_client, bucket: str, key: str, body: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=key, Body=body,
                         ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())


def artifact_manifest(bucket: str, key: str, body: bytes) -> dict:
    from cloudflare_worker_pipeline.config_maps import config_map

    return config_map("race-artifact", NAMESPACE, {"app.kubernetes.io/managed-by": "planton-cloud"}, {
        "bucket": bucket, "path": key, "content-hash": hashlib.sha256(body).hexdigest(), "size-bytes": str(len(body))})


def stored_is(s3_client, bucket: str, key: str, body: bytes):
    return lambda: s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def overtaken_after_first_look(s3_client, bucket: str, key: str, ours: bytes, theirs: bytes, settings):
    """Our run's still_current check: the first look says "ours"; right after it, the other run
    uploads ``theirs`` and records it, before our write goes out."""
    from cloudflare_worker_pipeline.config_maps import config_map_store

    looks = []

    def still_current() -> bool:
        looks.append(True)
        if len(looks) == 1:
            put(s3_client, bucket, key, theirs)
            config_map_store(settings).write(artifact_manifest(bucket, key, theirs), LOG,
                             still_current=stored_is(s3_client, bucket, key, theirs))
            return True
        return stored_is(s3_client, bucket, key, ours)()

    return still_current


def test_a_run_overtaken_between_its_check_and_its_write_leaves_the_newer_pair(connections, s3_client, bucket) -> None:
    from cloudflare_worker_pipeline.config_maps import config_map_store
    from cloudflare_worker_pipeline.settings import PipelineSettings

    settings = PipelineSettings.from_airflow_config()
    key, ours, theirs = "race/worker.js", b"export default 1;", b"export default 2;"
    put(s3_client, bucket, key, ours)
    where = config_map_store(settings).write(artifact_manifest(bucket, key, ours), LOG,
                             still_current=overtaken_after_first_look(s3_client, bucket, key, ours, theirs, settings))

    assert where is None, "superseded: nothing written"
    stored = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    data = connections.get(NAMESPACE, "race-artifact")["data"]
    assert stored == theirs
    assert data["content-hash"] == hashlib.sha256(stored).hexdigest() and data["size-bytes"] == str(len(stored))
    creates = [path for method, path, _ in connections.requests if method == "POST" and path.endswith("/configmaps")]
    assert len(creates) == 2, "ours tried to create too, and was refused: the other run had created it in between"


def test_a_run_whose_object_was_replaced_before_it_records_writes_nothing(connections, s3_client, bucket) -> None:
    from cloudflare_worker_pipeline.config_maps import config_map_store
    from cloudflare_worker_pipeline.settings import PipelineSettings

    settings = PipelineSettings.from_airflow_config()
    key, ours, theirs = "race/late.js", b"export default 'old';", b"export default 'new';"
    put(s3_client, bucket, key, theirs)  # the other run uploaded and recorded after ours uploaded
    config_map_store(settings).write(artifact_manifest(bucket, key, theirs), LOG, still_current=stored_is(s3_client, bucket, key, theirs))
    where = config_map_store(settings).write(artifact_manifest(bucket, key, ours), LOG, still_current=stored_is(s3_client, bucket, key, ours))

    assert where is None, "superseded: nothing written"
    assert connections.get(NAMESPACE, "race-artifact")["data"]["content-hash"] == hashlib.sha256(theirs).hexdigest()


def test_an_update_overtaken_between_check_and_write_is_refused_by_the_resource_version(connections, s3_client,
                                                                                        bucket) -> None:
    from cloudflare_worker_pipeline.config_maps import config_map_store
    from cloudflare_worker_pipeline.settings import PipelineSettings

    settings = PipelineSettings.from_airflow_config()
    key, first, ours, theirs = "race/update.js", b"export default 0;", b"export default 1;", b"export default 2;"
    put(s3_client, bucket, key, first)
    config_map_store(settings).write(artifact_manifest(bucket, key, first), LOG, still_current=stored_is(s3_client, bucket, key, first))
    put(s3_client, bucket, key, ours)
    assert config_map_store(settings).write(artifact_manifest(bucket, key, ours), LOG, still_current=overtaken_after_first_look(
        s3_client, bucket, key, ours, theirs, settings)) is None
    assert connections.get(NAMESPACE, "race-artifact")["data"]["content-hash"] == hashlib.sha256(theirs).hexdigest()
