"""Stage 5 with stage 6's output: the release published whole, both ConfigMaps or neither.

Runs only after the upload and the kustomize branch both succeeded (or the upload was skipped
because the object already holds this build), so a failed bundle never leaves new manifests beside
an old bundle, nor a failed overlay a new bundle beside old manifests.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.task.trigger_rule import TriggerRule

from cloudflare_worker_pipeline.links import R2ObjectLink
from cloudflare_worker_pipeline.operators.kustomize import read_rendered_overlays
from cloudflare_worker_pipeline.operators.stage import PipelineOperator

if TYPE_CHECKING:
    from cloudflare_worker_pipeline.config_maps import ConfigMapStore
    from cloudflare_worker_pipeline.parameters import PipelineParameters
    from cloudflare_worker_pipeline.results import CheckoutResult, PublishResult, UploadResult, WorkerBuild



class MetadataNotPublishedError(AirflowException):
    """The object at a fixed key was replaced but its ConfigMap could not be written (retried)."""


class PublishReleaseOperator(PipelineOperator):
    """Write the kustomize manifests ConfigMap, then each worker's artifact metadata ConfigMap
    (``bucket``, ``path``, ``content-hash``, ``size-bytes``), while the stored object is still this run's.

    When another run has replaced an object since (two runs, one key), none is written: that
    run publishes its own. When the upload replaced a fixed key's object and a write fails, the
    error names the object and both hashes: deploys still read the previous metadata.

    It runs when the upload succeeded or was skipped (``checkout`` found this build stored, and
    the object is checked again here); any failed upstream stops it.

    :param checkout: the output of the checkout stage: the commit, and the stored build if any.
    :param upload_task_id: the task whose results are the uploaded objects (one per worker, by map
        index), read when it ran.
    """

    template_fields: Sequence[str] = (*PipelineOperator.template_fields, "checkout")
    operator_extra_links = (R2ObjectLink(),)
    ui_color = "#68d391"

    def __init__(self, *, checkout: Any, upload_task_id: str = "upload", **kwargs: Any) -> None:
        super().__init__(trigger_rule=TriggerRule.NONE_FAILED, **kwargs)
        self.checkout: CheckoutResult = checkout
        self.upload_task_id = upload_task_id

    def execute(self, context: Any) -> PublishResult:
        from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError
        from cloudflare_worker_pipeline.config_maps import (
            ConfigMapTooLargeError,
            build_annotations,
            config_map,
            config_map_store,
        )
        from cloudflare_worker_pipeline.results import PublishResult, WorkerRelease
        from cloudflare_worker_pipeline.settings import SettingsError
        from cloudflare_worker_pipeline.workspace import WorkspaceNotVisibleError, check_visible

        p, settings = self.pipeline, self.settings
        workers = p.workers
        artifacts = self._artifacts(context, len(workers))
        try:
            check_visible(Path(p.workspace), self.task_id)
            store = config_map_store(settings)
            annotations = build_annotations(commit=self.checkout["commit_sha"], git_url=p.git_url, dag_id=self.dag_id,
                                            run_id=str(context["run_id"]), owner=p.owner)
            manifests = config_map(p.kustomize_manifests_config_map_name, settings.namespace, p.labels,
                                   read_rendered_overlays(p), annotations)
            metadata = [self._artifact_config_map(p.for_worker(worker), artifact, annotations)
                        for worker, artifact in zip(workers, artifacts, strict=True)]
        except (SettingsError, ConfigMapTooLargeError, UnsafeBuildFileError, ValueError, WorkspaceNotVisibleError) as error:
            raise AirflowFailException(f"ERROR: {error}") from None

        def holds(artifact: UploadResult) -> bool:
            return self.r2.holds(artifact["bucket"], artifact["key"], artifact["sha256"], artifact["size_bytes"])

        replaced = next((artifact for artifact in artifacts if not holds(artifact)), None)
        if replaced is not None:
            self.log.info("Not publishing: s3://%s/%s has since been replaced by another run, which publishes its "
                          "own ConfigMaps", replaced["bucket"], replaced["key"])
            superseded = f"superseded: left to the run that replaced s3://{replaced['bucket']}/{replaced['key']}"
            return PublishResult(artifact=artifacts[0], artifact_config_map=superseded, manifests_config_map=superseded,
                                 additional_workers=[WorkerRelease(artifact=artifact, artifact_config_map=superseded)
                                                     for artifact in artifacts[1:]])
        for artifact in artifacts:
            self._check_files(artifact)
        self._verify(artifacts)
        manifests_config_map = self._write(store, manifests, None, artifacts[0])
        releases = [WorkerRelease(artifact=artifact, artifact_config_map=self._write(
            store, config_map_, partial(holds, artifact), artifact))
            for config_map_, artifact in zip(metadata, artifacts, strict=True)]
        # A deploy DAG scheduled on the asset learns from the event which object(s) to deploy.
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {**artifacts[0], "git_url": p.git_url,
                                                     **({"additional_workers": artifacts[1:]} if artifacts[1:] else {})}
        return PublishResult(artifact=artifacts[0], artifact_config_map=releases[0]["artifact_config_map"],
                             manifests_config_map=manifests_config_map, additional_workers=releases[1:])

    def _check_files(self, artifact: UploadResult) -> None:
        """Never publish a bundle missing what it imports: each file beside it must hold its bytes."""
        records = [artifact.get("provenance"), artifact.get("egress_log"), artifact.get("signature")]
        for file in [*artifact["files"], *(record for record in records if record)]:
            if not self.r2.holds(artifact["bucket"], file["key"], file["sha256"], file["size_bytes"]):
                raise AirflowFailException(
                    f"ERROR: s3://{artifact['bucket']}/{file['key']} ({file['kind']} of {artifact['key']}) is missing or "
                    f"no longer holds sha256 {file['sha256']}; not publishing. Run again with force-rebuild=true")

    def _verify(self, artifacts: list[UploadResult]) -> None:
        """What ``verify`` checks, before any ConfigMap names the release: the platform's signature,
        every signed file's bytes, this run's commit and owner."""
        from cloudflare_worker_pipeline.signing import (
            ProvenanceSigningError,
            ProvenanceVerificationError,
            public_key_pem,
            run_signer,
        )
        from cloudflare_worker_pipeline.verify import verify_release

        settings, p = self.settings, self.pipeline
        try:
            signer = run_signer(settings.provenance_signing_conn_id, settings.allow_unsigned_provenance)
        except ProvenanceSigningError as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        if signer is None:
            self.log.warning("Publishing unsigned provenance (allow_unsigned_provenance): nothing to verify it with")
            return
        public = public_key_pem(signer)
        for artifact in artifacts:
            # A skipped rebuild publishes the stored build of an earlier commit with the same
            # fingerprint: its own signed commit (which verify holds to the object's metadata).
            commit = None if artifact["skipped"] else self.checkout["commit_sha"]
            try:
                verify_release(self.r2, artifact["bucket"], artifact["key"], public, commit=commit,
                               owner=p.owner, max_bytes=settings.max_bundle_bytes)
            except ProvenanceVerificationError as error:
                raise AirflowFailException(f"ERROR: {error}; not publishing. Run again with force-rebuild=true") \
                    from None
            self.log.info("Verified s3://%s/%s: signed by this platform's key, every file's bytes, commit %s, owner %s",
                          artifact["bucket"], artifact["key"], commit or "(the stored build's)", p.owner or "(none)")

    def _artifacts(self, context: Any, count: int) -> list[UploadResult]:
        """Each worker's object to publish: what its upload stored, or the build checkout found stored."""
        from cloudflare_worker_pipeline.results import worker_build

        builds = [worker_build(self.checkout, index) for index in range(count)]
        uploaded: list[UploadResult | None] = [None] * count
        if any(build["stored_build"] is None for build in builds):
            ti = context["ti"]
            if count == 1:  # the upload's one instance (map index 0), or an unmapped upload task
                uploaded = [ti.xcom_pull(task_ids=self.upload_task_id)]
            else:
                uploaded = list(ti.xcom_pull(task_ids=self.upload_task_id, map_indexes=list(range(count))))
        return [self._artifact(index, build, uploaded[index]) for index, build in enumerate(builds)]

    def _artifact(self, index: int, build: WorkerBuild, uploaded: UploadResult | None) -> UploadResult:
        from cloudflare_worker_pipeline.results import UploadResult

        stored, commit = build["stored_build"], self.checkout["commit_sha"]
        if stored is None:
            if not uploaded:
                raise AirflowFailException(f"ERROR: {self.upload_task_id} left no result for worker {index}, and "
                                           "checkout found no stored build: nothing to publish")
            return uploaded
        p = self.pipeline
        self.log.info("The upload was skipped: s3://%s/%s already holds this build (sha256 %s)", p.r2_bucket_name,
                      stored["key"], stored["sha256"])
        return UploadResult(artifact_url=f"{p.r2_endpoint_url}/{p.r2_bucket_name}/{stored['key']}",
                            bucket=p.r2_bucket_name, key=stored["key"], sha256=stored["sha256"],
                            size_bytes=stored["size_bytes"], commit_sha=commit, replaced_sha256=None, skipped=True,
                            files=stored["files"], provenance=stored["provenance"],
                            egress_log=stored.get("egress_log"), signature=stored.get("signature"),
                            gzip_bytes=stored["gzip_bytes"],
                            brotli_bytes=stored["brotli_bytes"])

    def _artifact_config_map(self, p: PipelineParameters, artifact: UploadResult,
                             annotations: dict[str, str]) -> dict[str, Any]:
        """A worker's artifact metadata ConfigMap: the spec's four keys, annotated with this run."""
        from cloudflare_worker_pipeline.config_maps import artifact_annotations, config_map

        return config_map(p.worker_script_artifact_config_map_name, self.settings.namespace, p.labels, {
            "bucket": artifact["bucket"],
            "path": artifact["key"],
            "content-hash": artifact["sha256"],
            "size-bytes": str(artifact["size_bytes"]),
        }, {**annotations, **artifact_annotations(artifact)})

    def _write(self, store: ConfigMapStore, manifest: dict[str, Any], still_ours: Any, artifact: UploadResult) -> str:
        from cloudflare_worker_pipeline.ownership import ConfigMapOwnedElsewhereError

        meta = manifest["metadata"]
        try:
            where = store.write(manifest, self.log, still_ours)
        except ConfigMapOwnedElsewhereError as error:
            raise AirflowFailException(f"ERROR: {error}") from None
        except Exception as error:
            replaced = artifact["replaced_sha256"]
            if replaced and replaced != artifact["sha256"]:
                raise MetadataNotPublishedError(
                    f"ERROR: s3://{artifact['bucket']}/{artifact['key']} now holds sha256 {artifact['sha256']} "
                    f"(commit {artifact['commit_sha']}), replacing sha256 {replaced}, but ConfigMap "
                    f"{meta['namespace']}/{meta['name']} could not be written ({type(error).__name__}: {error}); "
                    "until a retry or a new run publishes, readers of that ConfigMap see the previous release "
                    "while the object is the new one (its metadata has the new content-hash and commit)"
                ) from error
            raise
        if where is None:
            return f"superseded: configmap/{meta['name']} left to the run that replaced the object"
        return where
