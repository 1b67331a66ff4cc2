"""Cloudflare R2 through the S3 API: verified puts, reads of what is stored, error classes.

Everything about talking to R2 lives here: the client's configuration, the checksum sent with a
put, the HEAD that verifies what was stored, which S3 errors no retry can fix.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# boto3 >= 1.36 sends CRC checksums by default, which R2 rejects; checksums are sent only when
# an operation requires one, and ours carries a precomputed SHA-256 instead.
R2_BOTOCORE_CONFIG = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
    "retries": {"mode": "standard", "max_attempts": 4},
    "connect_timeout": 10,
    "read_timeout": 60,
}

# S3 error codes no retry can fix: fail at once instead of burning Airflow retries.
PERMANENT_ERRORS = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "InvalidBucketName",
    "BadDigest", "InvalidDigest", "EntityTooLarge", "InvalidArgument", "InvalidRequest", "MethodNotAllowed",
    "400", "403",  # a HEAD's answer has no body, only its status: a refused signature reads "403"
})
_ABSENT = frozenset({"404", "NoSuchKey", "NotFound"})


class R2Error(RuntimeError):
    """An R2 request failed; the message names the object and S3's code (the spec's ``upload: failed:``)."""


class PermanentR2Error(R2Error):
    """No retry can fix it: refused credentials, a missing bucket, a digest the server rejected."""


@dataclass(frozen=True)
class StoredObject:
    """What a HEAD says is at a key: size, SHA-256 (hex) and the metadata the pipeline wrote."""

    size_bytes: int
    sha256: str | None
    metadata: dict[str, str]

    def holds(self, sha256: str, size_bytes: int) -> bool:
        return self.size_bytes == size_bytes and self.sha256 == sha256


class R2Hook(S3Hook):
    """An ``S3Hook`` whose endpoint comes from the run (``r2-endpoint-url``), region ``auto``.

    Credentials come only from the Airflow connection (type ``aws``); the endpoint in the
    connection's extra, if any, is overridden by the run's.
    """

    def __init__(self, *, endpoint_url: str, aws_conn_id: str, **kwargs: Any) -> None:
        super().__init__(aws_conn_id=aws_conn_id, region_name="auto", config=Config(**R2_BOTOCORE_CONFIG), **kwargs)
        self.endpoint_url = endpoint_url

    @cached_property
    def conn_config(self) -> AwsConnectionWrapper:
        wrapper = super().conn_config
        wrapper.endpoint_url = self.endpoint_url
        return wrapper

    def stored(self, bucket: str, key: str) -> StoredObject | None:
        """What is at ``key`` (one HEAD), or None when nothing is."""
        target = f"s3://{bucket}/{key}"
        try:
            head = self._call(target, lambda c: c.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
        except R2Error as error:
            if isinstance(error.__cause__, ClientError) and _code(error.__cause__) in _ABSENT:
                return None
            raise
        metadata = dict(head.get("Metadata") or {})
        checksum = head.get("ChecksumSHA256")
        sha256 = base64.b64decode(checksum).hex() if checksum else metadata.get("content-hash")
        return StoredObject(size_bytes=int(head.get("ContentLength", -1)), sha256=sha256, metadata=metadata)

    def holds(self, bucket: str, key: str, sha256: str, size_bytes: int) -> bool:
        """Does ``key`` hold exactly these bytes (SHA-256 hex and size)?"""
        found = self.stored(bucket, key)
        return found is not None and found.holds(sha256, size_bytes)

    def read(self, bucket: str, key: str, *, max_bytes: int) -> bytes | None:
        """The object's bytes (one GET), None when nothing is at ``key``; over ``max_bytes`` is an error."""
        target = f"s3://{bucket}/{key}"
        try:
            response = self._call(target, lambda c: c.get_object(Bucket=bucket, Key=key))
        except R2Error as error:
            if isinstance(error.__cause__, ClientError) and _code(error.__cause__) in _ABSENT:
                return None
            raise
        with response["Body"] as stream:
            body: bytes = stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise PermanentR2Error(f"{target} is larger than {max_bytes} bytes")
        return body

    def put_verified(self, bucket: str, key: str, body: bytes, *, metadata: dict[str, str],
                     content_type: str = "application/javascript") -> StoredObject:
        """Put ``body`` with its SHA-256, so the server refuses corrupted bytes, then HEAD it and
        compare size and checksum. Raises :class:`PermanentR2Error` or :class:`R2Error`."""
        target = f"s3://{bucket}/{key}"
        digest = hashlib.sha256(body)
        self._call(target, lambda c: c.put_object(
            Bucket=bucket, Key=key, Body=body, ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
            ContentType=content_type, Metadata={**metadata, "content-hash": digest.hexdigest()},
        ))
        found = self.stored(bucket, key)
        if found is None or not found.holds(digest.hexdigest(), len(body)):
            raise R2Error(
                f"upload: failed: {target} stored object does not match: "
                f"{found.size_bytes if found else 'no'} bytes, sha256 {found.sha256 if found else None}; "
                f"expected {len(body)} bytes, sha256 {digest.hexdigest()}"
            )
        return found

    def _call(self, target: str, request: Any) -> Any:
        """One S3 request, its failure turned into an :class:`R2Error` naming ``target``."""
        try:
            return request(self.get_conn())
        except ClientError as error:
            err = error.response.get("Error", {})
            message = f"upload: failed: {target} {err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
            kind = PermanentR2Error if _code(error) in PERMANENT_ERRORS else R2Error
            raise kind(message) from error
        except BotoCoreError as error:
            reason = "Connection refused" if "Connect" in type(error).__name__ else str(error)
            raise R2Error(f"upload: failed: {target} {reason}") from error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
