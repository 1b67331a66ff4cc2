"""Stage 4: uploading the bundle to R2 through the S3 API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.links import R2ObjectLink
from cloudflare_worker_pipeline.operators.stage import PipelineOperator

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.results import (
        BuildFile,
        BundleResult,
        CheckoutResult,
        InstallResult,
        UploadedFile,
        UploadResult,
    )



@contextmanager
def failing_as_the_bundle(target: str, key: str) -> Iterator[None]:
    """A file beside the bundle failed to store: say so in the spec's form for the bundle
    (``upload: failed: s3://<bucket>/<r2-object-key> ...``), naming the file."""
    from cloudflare_worker_pipeline.hooks.r2 import R2Error

    try:
        yield
    except R2Error as error:
        parts = str(error).split(" ", 3)
        reason = parts[3] if len(parts) == 4 and parts[:2] == ["upload:", "failed:"] else str(error)
        raise type(error)(f"upload: failed: {target} {reason} (storing {key} beside it)") from error


class UploadBundleOperator(PipelineOperator):
    """Upload the bundle with its SHA-256 so the server verifies what it stores, then verify it.

    The object's metadata records its ``content-hash``, ``commit`` and ``owner``, so a reader of a
    fixed key can tell which build it holds with one HEAD.

    :param bundle: the output of the bundle stage.
    :param checkout: the output of the checkout stage; its commit fills ``{commit_sha}`` and
        ``{short_sha}`` in ``r2-object-key``.
    """

    template_fields: Sequence[str] = (*PipelineOperator.template_fields, "bundle", "checkout", "install")
    operator_extra_links = (R2ObjectLink(),)

    def __init__(self, *, bundle: Any, checkout: Any, install: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle: BundleResult = bundle
        self.checkout: CheckoutResult = checkout
        self.install: InstallResult | None = install

    def execute(self, context: Any) -> UploadResult:
        from cloudflare_worker_pipeline.allowed_hosts import HostNotAllowedError, check_r2_endpoint
        from cloudflare_worker_pipeline.egress_log import EGRESS_LOG_METADATA, egress_log_key
        from cloudflare_worker_pipeline.fingerprint import FINGERPRINT_METADATA, READS_OUTSIDE
        from cloudflare_worker_pipeline.hooks.r2 import PermanentR2Error, R2Error
        from cloudflare_worker_pipeline.ownership import ObjectOwnedElsewhereError, check_object_owner, object_identity
        from cloudflare_worker_pipeline.parameters import object_key_for_commit
        from cloudflare_worker_pipeline.provenance import PROVENANCE_METADATA, provenance_key
        from cloudflare_worker_pipeline.results import UploadedFile, UploadResult, worker_build
        from cloudflare_worker_pipeline.signing import (
            SIGNATURE_METADATA,
            ProvenanceSigningError,
            run_signer,
            sign,
            signature_key,
        )
        from cloudflare_worker_pipeline.worker_files import (
            BROTLI_METADATA,
            GZIP_METADATA,
            MANIFEST_METADATA,
            file_key,
            manifest_body,
            manifest_key,
        )

        p, bundle, commit = self.pipeline, self.bundle, self.checkout["commit_sha"]
        key = object_key_for_commit(p.r2_object_key, commit)
        body = self._read_bundle()
        companions = [(file, self._read_file(file)) for file in bundle["files"]]
        keys = [key, *(file_key(key, file) for file, _ in companions), *([manifest_key(key)] if companions else []),
                provenance_key(key), signature_key(key), egress_log_key(key)]
        if len(set(keys)) != len(keys):
            raise AirflowFailException(f"ERROR: r2-object-key {key} collides with a file stored beside it ({', '.join(keys)})")
        target = f"s3://{p.r2_bucket_name}/{key}"
        try:  # again, right before connecting: the name may resolve elsewhere by now
            check_r2_endpoint(p.r2_endpoint_url, self.settings.allowed_r2_endpoints)
            signer = run_signer(self.settings.provenance_signing_conn_id, self.settings.allow_unsigned_provenance)
        except HostNotAllowedError as error:
            raise AirflowFailException(str(error)) from None
        except ProvenanceSigningError as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        self.log.info("Uploading %s (%d bytes, sha256 %s) to %s at %s", bundle["bundle_path"], len(body),
                      bundle["sha256"], target, p.r2_endpoint_url)
        fingerprint = READS_OUTSIDE if bundle["inputs_outside"] else worker_build(self.checkout, self.worker_index)["fingerprint"]
        metadata = {**object_identity(p.owner, p.git_url), "commit": commit, FINGERPRINT_METADATA: fingerprint}
        sizes = {GZIP_METADATA: str(bundle["gzip_bytes"]), BROTLI_METADATA: str(bundle["brotli_bytes"])}
        try:
            previous = self.r2.stored(p.r2_bucket_name, key)
            check_object_owner(previous.metadata if previous else None, p.owner,
                               adopt_unowned=self.settings.adopt_unowned_objects,
                               repository=p.git_url if p.force_rebuild else None)
            # The files first, the bundle last: a bundle is never stored before what it imports.
            files = []
            for file, data in companions:
                with failing_as_the_bundle(target, file_key(key, file)):
                    files.append(self._put_file(file_key(key, file), file, data, metadata))
            if files:
                manifest = manifest_body(files)
                with failing_as_the_bundle(target, manifest_key(key)):
                    self._put(manifest_key(key), manifest, metadata, "application/json")
                metadata = {**metadata, MANIFEST_METADATA: hashlib.sha256(manifest).hexdigest()}
            log = self._egress_log(context, key)
            with failing_as_the_bundle(target, egress_log_key(key)):
                self._put(egress_log_key(key), log, metadata, "application/json")
            log_file = UploadedFile(key=egress_log_key(key), kind="egress-log", sha256=hashlib.sha256(log).hexdigest(),
                                    size_bytes=len(log))
            metadata = {**metadata, EGRESS_LOG_METADATA: log_file["sha256"]}
            provenance = self._provenance(context, key, files, log_file)
            with failing_as_the_bundle(target, provenance_key(key)):
                self._put(provenance_key(key), provenance, metadata, "application/json")
            statement_file = UploadedFile(key=provenance_key(key), kind="provenance",
                                          sha256=hashlib.sha256(provenance).hexdigest(), size_bytes=len(provenance))
            metadata = {**metadata, PROVENANCE_METADATA: statement_file["sha256"]}
            signature_file = None
            if signer is not None:  # the platform's signature: the key stays in this process
                envelope = sign(provenance, signer)
                with failing_as_the_bundle(target, signature_key(key)):
                    self._put(signature_key(key), envelope, metadata, "application/jsonl")
                signature_file = UploadedFile(key=signature_key(key), kind="provenance-signature",
                                              sha256=hashlib.sha256(envelope).hexdigest(), size_bytes=len(envelope))
                metadata = {**metadata, SIGNATURE_METADATA: signature_file["sha256"]}
            else:
                self.log.warning("The provenance is not signed: no connection %s, and allow_unsigned_provenance is set",
                                 self.settings.provenance_signing_conn_id)
            self.r2.put_verified(p.r2_bucket_name, key, body, metadata={**metadata, **sizes})
        except ObjectOwnedElsewhereError as error:
            raise AirflowFailException(f"upload: failed: {target} {error}") from None
        except PermanentR2Error as error:
            raise AirflowFailException(str(error)) from None
        except R2Error:
            raise  # transient: Airflow's retries
        artifact_url = f"{p.r2_endpoint_url}/{p.r2_bucket_name}/{key}"
        self.log.info("Uploaded and verified %s%s", artifact_url, f" and {len(files)} file(s) beside it" if files else "")
        return UploadResult(artifact_url=artifact_url, bucket=p.r2_bucket_name, key=key, sha256=bundle["sha256"],
                            size_bytes=bundle["size_bytes"], commit_sha=commit,
                            replaced_sha256=(previous.sha256 or "unknown") if previous else None, skipped=False,
                            files=files, provenance=statement_file, egress_log=log_file, signature=signature_file,
                            gzip_bytes=bundle["gzip_bytes"],
                            brotli_bytes=bundle["brotli_bytes"])

    def _egress_log(self, context: Any, key: str) -> bytes:
        """Where checkout and install's fetch went, as the worker's egress proxy saw it."""
        from cloudflare_worker_pipeline.egress_log import egress_log

        return egress_log(key=key, commit=self.checkout["commit_sha"], invocation=f"{self.dag_id}/{context['run_id']}",
                          stages={"checkout": self.checkout.get("egress"),
                                  "install": self.install.get("egress") if self.install else None})

    def _provenance(self, context: Any, key: str, files: list[UploadedFile], log: UploadedFile) -> bytes:
        """The in-toto statement for the bundle and every file beside it; the egress log is a byproduct."""
        from cloudflare_worker_pipeline.provenance import statement, statement_bytes

        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or datetime.now(UTC)
        document = statement(
            p=self.pipeline, subjects={key: self.bundle["sha256"], **{f["key"]: f["sha256"] for f in files}},
            commit=self.checkout["commit_sha"], toolchain=self.checkout.get("toolchain") or {},
            reported={**(self.install["toolchain"] if self.install else {}), "wrangler": self.bundle["wrangler_version"]},
            dag_id=self.dag_id, run_id=str(context["run_id"]),
            execution_mode=self.settings.execution_mode.value, started=started.isoformat(),
            byproducts={log["key"]: log["sha256"]},
            finished=datetime.now(UTC).isoformat())
        return statement_bytes(document)

    def _put_file(self, key: str, file: BuildFile, body: bytes, metadata: dict[str, str]) -> UploadedFile:
        """Store one module or source map; a module already stored with these bytes is left as it is."""
        from cloudflare_worker_pipeline.ownership import ObjectOwnedElsewhereError, check_object_owner
        from cloudflare_worker_pipeline.results import UploadedFile
        from cloudflare_worker_pipeline.worker_files import content_type

        stored = self.r2.stored(self.pipeline.r2_bucket_name, key)
        uploaded = UploadedFile(key=key, kind=file["kind"], sha256=file["sha256"], size_bytes=file["size_bytes"])
        if file["kind"] == "module" and stored is not None and stored.holds(file["sha256"], file["size_bytes"]):
            self.log.info("%s already holds %s (sha256 %s)", key, file["name"], file["sha256"])
            return uploaded
        try:
            check_object_owner(stored.metadata if stored else None, self.pipeline.owner,
                               adopt_unowned=self.settings.adopt_unowned_objects)
        except ObjectOwnedElsewhereError as error:
            raise ObjectOwnedElsewhereError(f"(file {key} beside it) {error}") from None
        self._put(key, body, metadata, content_type(file["name"]))
        return uploaded

    def _put(self, key: str, body: bytes, metadata: dict[str, str], kind: str) -> None:
        self.r2.put_verified(self.pipeline.r2_bucket_name, key, body, metadata=metadata, content_type=kind)

    def _read_file(self, file: BuildFile) -> bytes:
        """A file beside the bundle, exactly as the bundle stage hashed it."""
        relative = (Path(self.bundle["bundle_path"]).parent / file["name"]).as_posix()
        return self._read_measured(relative, file["sha256"], file["size_bytes"])

    def _read_bundle(self) -> bytes:
        """The bundle's bytes, exactly those the bundle stage measured."""
        return self._read_measured(self.bundle["bundle_path"], self.bundle["sha256"], self.bundle["size_bytes"])

    def _read_measured(self, relative: str, sha256: str, size_bytes: int) -> bytes:
        """A file the build wrote under the project root, checked against the bundle stage's hash."""
        from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError, read_build_file
        from cloudflare_worker_pipeline.workspace import WorkspaceNotVisibleError, check_visible

        p = self.pipeline
        path = p.project_dir / relative
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
        if found != sha256 or len(body) != size_bytes:
            raise AirflowFailException(
                f"{path} changed after bundling: expected sha256 {sha256} "
                f"({size_bytes} bytes), found {found} ({len(body)} bytes)"
            )
        return body
