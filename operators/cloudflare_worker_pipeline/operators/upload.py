"""Stage 4: uploading the bundle to R2 through the S3 API."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.allowed_hosts import HostNotAllowedError, check_r2_endpoint
from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, read_build_file
from cloudflare_worker_pipeline.links import R2ObjectLink
from cloudflare_worker_pipeline.operators.stage import PipelineOperator
from cloudflare_worker_pipeline.ownership import ObjectOwnedElsewhereError, check_object_owner
from cloudflare_worker_pipeline.parameters import object_key_for_commit

# S3 error codes no retry can fix: fail at once instead of burning Airflow retries.
PERMANENT_ERRORS = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "InvalidBucketName",
    "BadDigest", "InvalidDigest", "EntityTooLarge", "InvalidArgument", "InvalidRequest", "MethodNotAllowed",
    "400", "403",  # a HEAD's answer has no body, only its status: a refused signature reads "403"
}


class UploadError(RuntimeError):
    """A transient upload failure, left to Airflow's retries."""


class UploadBundleOperator(PipelineOperator):
    """Upload the bundle with its SHA-256 so the server verifies what it stores, then verify it.

    :param bundle: the output of the bundle stage.
    :param checkout: the output of the checkout stage; its commit fills ``{commit_sha}`` and
        ``{short_sha}`` in ``r2-object-key``.
    Returns ``artifact_url`` (``<endpoint>/<bucket>/<key>``, as the spec's task did), ``bucket``,
    ``key``, ``sha256`` and ``size_bytes``.
    """

    template_fields: Sequence[str] = (*PipelineOperator.template_fields, "bundle", "checkout")
    operator_extra_links = (R2ObjectLink(),)

    def __init__(self, *, bundle: Any, checkout: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle
        self.checkout = checkout

    def execute(self, context: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        from cloudflare_worker_pipeline.hooks.r2 import R2Hook

        p = self.pipeline
        path = p.project_dir / self.bundle["bundle_path"]
        try:  # the build wrote it, beside the repository's code: no links, a regular file, capped
            body = read_build_file(Path(p.workspace), path.relative_to(p.workspace),
                                   max_bytes=self.settings.max_bundle_bytes)
        except UnsafeBuildFileError as error:
            raise AirflowFailException(f"ERROR: bundle {error}") from None
        digest = hashlib.sha256(body)
        if digest.hexdigest() != self.bundle["sha256"] or len(body) != self.bundle["size_bytes"]:
            raise AirflowFailException(
                f"{path} changed after bundling: expected sha256 {self.bundle['sha256']} "
                f"({self.bundle['size_bytes']} bytes), found {digest.hexdigest()} ({len(body)} bytes)"
            )
        try:  # again, right before connecting: the name may resolve elsewhere by now
            check_r2_endpoint(p.r2_endpoint_url, self.settings.allowed_r2_endpoints)
        except HostNotAllowedError as error:
            raise AirflowFailException(str(error)) from None
        key = object_key_for_commit(p.r2_object_key, self.checkout["commit_sha"])
        target = f"s3://{p.r2_bucket_name}/{key}"
        client = R2Hook(endpoint_url=p.r2_endpoint_url, aws_conn_id=self.settings.r2_conn_id).get_conn()
        checksum = base64.b64encode(digest.digest()).decode()
        self.log.info("Uploading %s (%d bytes, sha256 %s) to %s at %s", path.name, len(body), digest.hexdigest(), target, p.r2_endpoint_url)
        try:
            check_object_owner(client, p.r2_bucket_name, key, p.owner)
            client.put_object(
                Bucket=p.r2_bucket_name,
                Key=key,
                Body=body,
                ChecksumSHA256=checksum,
                ContentType="application/javascript",
                # Who may replace it, and what it is: readable with one HEAD.
                Metadata={"content-hash": digest.hexdigest(), "owner": p.owner, "commit": self.checkout["commit_sha"]},
            )
            head = client.head_object(Bucket=p.r2_bucket_name, Key=key, ChecksumMode="ENABLED")
        except ObjectOwnedElsewhereError as error:
            raise AirflowFailException(f"upload: failed: {target} {error}") from None
        except ClientError as error:
            err = error.response.get("Error", {})
            message = f"upload: failed: {target} {err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
            if err.get("Code") in PERMANENT_ERRORS:
                raise AirflowFailException(message) from None
            raise UploadError(message) from None
        except BotoCoreError as error:
            reason = "Connection refused" if "Connect" in type(error).__name__ else str(error)
            raise UploadError(f"upload: failed: {target} {reason}") from None

        stored_checksum = head.get("ChecksumSHA256")
        if head.get("ContentLength") != len(body) or (stored_checksum and stored_checksum != checksum):
            raise UploadError(
                f"upload: failed: {target} stored object does not match: {head.get('ContentLength')} bytes, "
                f"sha256 {stored_checksum}; expected {len(body)} bytes, sha256 {checksum}"
            )
        artifact_url = f"{p.r2_endpoint_url}/{p.r2_bucket_name}/{key}"
        self.log.info("Uploaded and verified %s", artifact_url)
        artifact = {
            "artifact_url": artifact_url,
            "bucket": p.r2_bucket_name,
            "key": key,
            "sha256": digest.hexdigest(),
            "size_bytes": len(body),
        }
        # A deploy DAG scheduled on the asset learns from the event which object to deploy.
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {**artifact, "commit_sha": self.checkout["commit_sha"],
                                                     "git_url": p.git_url}
        return artifact
