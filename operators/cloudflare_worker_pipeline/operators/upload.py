"""Stage 4: uploading the bundle to R2 through the S3 API."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.allowed_hosts import HostNotAllowedError, check_r2_endpoint
from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, read_build_file
from cloudflare_worker_pipeline.fingerprint import FINGERPRINT_METADATA
from cloudflare_worker_pipeline.links import R2ObjectLink
from cloudflare_worker_pipeline.operators.stage import PipelineOperator
from cloudflare_worker_pipeline.ownership import ObjectOwnedElsewhereError, check_object_owner
from cloudflare_worker_pipeline.parameters import object_key_for_commit
from cloudflare_worker_pipeline.results import BundleResult, CheckoutResult, UploadResult
from cloudflare_worker_pipeline.workspace import WorkspaceNotVisibleError, check_visible


class UploadBundleOperator(PipelineOperator):
    """Upload the bundle with its SHA-256 so the server verifies what it stores, then verify it.

    The object's metadata records its ``content-hash``, ``commit`` and ``owner``, so a reader of a
    fixed key can tell which build it holds with one HEAD.

    :param bundle: the output of the bundle stage.
    :param checkout: the output of the checkout stage; its commit fills ``{commit_sha}`` and
        ``{short_sha}`` in ``r2-object-key``.
    """

    template_fields: Sequence[str] = (*PipelineOperator.template_fields, "bundle", "checkout")
    operator_extra_links = (R2ObjectLink(),)

    def __init__(self, *, bundle: Any, checkout: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle: BundleResult = bundle
        self.checkout: CheckoutResult = checkout

    def execute(self, context: Any) -> UploadResult:
        from cloudflare_worker_pipeline.hooks.r2 import PermanentR2Error, R2Error

        p, bundle, commit = self.pipeline, self.bundle, self.checkout["commit_sha"]
        key = object_key_for_commit(p.r2_object_key, commit)
        body = self._read_bundle()
        target = f"s3://{p.r2_bucket_name}/{key}"
        try:  # again, right before connecting: the name may resolve elsewhere by now
            check_r2_endpoint(p.r2_endpoint_url, self.settings.allowed_r2_endpoints)
        except HostNotAllowedError as error:
            raise AirflowFailException(str(error)) from None
        self.log.info("Uploading %s (%d bytes, sha256 %s) to %s at %s", bundle["bundle_path"], len(body),
                      bundle["sha256"], target, p.r2_endpoint_url)
        try:
            previous = self.r2.stored(p.r2_bucket_name, key)
            check_object_owner(previous.metadata.get("owner") if previous else None, p.owner)
            self.r2.put_verified(p.r2_bucket_name, key, body, metadata={
                "owner": p.owner, "commit": commit, FINGERPRINT_METADATA: self.checkout["fingerprint"]})
        except ObjectOwnedElsewhereError as error:
            raise AirflowFailException(f"upload: failed: {target} {error}") from None
        except PermanentR2Error as error:
            raise AirflowFailException(str(error)) from None
        except R2Error:
            raise  # transient: Airflow's retries
        artifact_url = f"{p.r2_endpoint_url}/{p.r2_bucket_name}/{key}"
        self.log.info("Uploaded and verified %s", artifact_url)
        return UploadResult(artifact_url=artifact_url, bucket=p.r2_bucket_name, key=key, sha256=bundle["sha256"],
                            size_bytes=bundle["size_bytes"], commit_sha=commit,
                            replaced_sha256=(previous.sha256 or "unknown") if previous else None, skipped=False)

    def _read_bundle(self) -> bytes:
        """The bundle's bytes, exactly those the bundle stage measured."""
        p, bundle = self.pipeline, self.bundle
        path = p.project_dir / bundle["bundle_path"]
        try:
            check_visible(Path(p.workspace), self.task_id)
        except WorkspaceNotVisibleError as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        try:  # the build wrote it, beside the repository's code: no links, a regular file, capped
            body = read_build_file(Path(p.workspace), path.relative_to(p.workspace),
                                   max_bytes=self.settings.max_bundle_bytes)
        except UnsafeBuildFileError as error:
            raise AirflowFailException(f"ERROR: bundle {error}") from None
        found = hashlib.sha256(body).hexdigest()
        if found != bundle["sha256"] or len(body) != bundle["size_bytes"]:
            raise AirflowFailException(
                f"{path} changed after bundling: expected sha256 {bundle['sha256']} "
                f"({bundle['size_bytes']} bytes), found {found} ({len(body)} bytes)"
            )
        return body
