"""Stage 5 with stage 6's output: the release published whole, both ConfigMaps or neither.

Runs only after the upload and the kustomize branch both succeeded (or the upload was skipped
because the object already holds this build), so a failed bundle never leaves new manifests beside
an old bundle, nor a failed overlay a new bundle beside old manifests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.task.trigger_rule import TriggerRule

from cloudflare_worker_pipeline.build_files import UnsafeBuildFileError
from cloudflare_worker_pipeline.config_maps import (
    ConfigMapStore,
    ConfigMapTooLargeError,
    artifact_annotations,
    build_annotations,
    config_map,
    config_map_store,
)
from cloudflare_worker_pipeline.links import R2ObjectLink
from cloudflare_worker_pipeline.operators.kustomize import read_rendered_overlays
from cloudflare_worker_pipeline.operators.stage import PipelineOperator
from cloudflare_worker_pipeline.ownership import ConfigMapOwnedElsewhereError
from cloudflare_worker_pipeline.results import CheckoutResult, PublishResult, UploadResult
from cloudflare_worker_pipeline.settings import SettingsError
from cloudflare_worker_pipeline.workspace import WorkspaceNotVisibleError, check_visible


class MetadataNotPublishedError(AirflowException):
    """The object at a fixed key was replaced but its ConfigMap could not be written (retried)."""


class PublishReleaseOperator(PipelineOperator):
    """Write the kustomize manifests ConfigMap, then the artifact metadata ConfigMap (``bucket``,
    ``path``, ``content-hash``, ``size-bytes``), while the stored object is still this run's.

    When another run has replaced the object since (two runs, one key), neither is written: that
    run publishes its own. When the upload replaced a fixed key's object and a write fails, the
    error names the object and both hashes: deploys still read the previous metadata.

    It runs when the upload succeeded or was skipped (``checkout`` found this build stored, and
    the object is checked again here); any failed upstream stops it.

    :param checkout: the output of the checkout stage: the commit, and the stored build if any.
    :param upload_task_id: the task whose result is the uploaded object, read when it ran.
    """

    template_fields: Sequence[str] = (*PipelineOperator.template_fields, "checkout")
    operator_extra_links = (R2ObjectLink(),)
    ui_color = "#68d391"

    def __init__(self, *, checkout: Any, upload_task_id: str = "upload", **kwargs: Any) -> None:
        super().__init__(trigger_rule=TriggerRule.NONE_FAILED, **kwargs)
        self.checkout: CheckoutResult = checkout
        self.upload_task_id = upload_task_id

    def execute(self, context: Any) -> PublishResult:
        p, settings = self.pipeline, self.settings
        artifact = self._artifact(context)
        try:
            check_visible(Path(p.workspace), self.task_id)
            store = config_map_store(settings)
            manifests, metadata = self._manifests(context, artifact)
        except (SettingsError, ConfigMapTooLargeError, UnsafeBuildFileError, ValueError, WorkspaceNotVisibleError) as error:
            raise AirflowFailException(f"ERROR: {error}") from None

        def still_ours() -> bool:
            return self.r2.holds(artifact["bucket"], artifact["key"], artifact["sha256"], artifact["size_bytes"])

        if not still_ours():
            self.log.info("Not publishing: s3://%s/%s has since been replaced by another run, which publishes its "
                          "own ConfigMaps", artifact["bucket"], artifact["key"])
            superseded = f"superseded: left to the run that replaced s3://{artifact['bucket']}/{artifact['key']}"
            return PublishResult(artifact=artifact, artifact_config_map=superseded, manifests_config_map=superseded)
        self._check_files(artifact)
        published = PublishResult(artifact=artifact, manifests_config_map=self._write(store, manifests, None, artifact),
                                  artifact_config_map=self._write(store, metadata, still_ours, artifact))
        # A deploy DAG scheduled on the asset learns from the event which object to deploy.
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {**artifact, "git_url": p.git_url}
        return published

    def _check_files(self, artifact: UploadResult) -> None:
        """Never publish a bundle missing what it imports: each file beside it must hold its bytes."""
        statement = artifact.get("provenance")
        for file in [*artifact["files"], *([statement] if statement else [])]:
            if not self.r2.holds(artifact["bucket"], file["key"], file["sha256"], file["size_bytes"]):
                raise AirflowFailException(
                    f"ERROR: s3://{artifact['bucket']}/{file['key']} ({file['kind']} of {artifact['key']}) is missing or "
                    f"no longer holds sha256 {file['sha256']}; not publishing. Run again with force-rebuild=true")

    def _artifact(self, context: Any) -> UploadResult:
        """The object to publish: what the upload stored, or the build checkout found stored."""
        stored, commit = self.checkout["stored_build"], self.checkout["commit_sha"]
        if stored is None:
            uploaded: UploadResult | None = context["ti"].xcom_pull(task_ids=self.upload_task_id)
            if not uploaded:
                raise AirflowFailException(f"ERROR: {self.upload_task_id} left no result, and checkout found no stored "
                                           "build: nothing to publish")
            return uploaded
        p = self.pipeline
        self.log.info("The upload was skipped: s3://%s/%s already holds this build (sha256 %s)", p.r2_bucket_name,
                      stored["key"], stored["sha256"])
        return UploadResult(artifact_url=f"{p.r2_endpoint_url}/{p.r2_bucket_name}/{stored['key']}",
                            bucket=p.r2_bucket_name, key=stored["key"], sha256=stored["sha256"],
                            size_bytes=stored["size_bytes"], commit_sha=commit, replaced_sha256=None, skipped=True,
                            files=stored["files"], provenance=stored["provenance"], gzip_bytes=stored["gzip_bytes"],
                            brotli_bytes=stored["brotli_bytes"])

    def _manifests(self, context: Any, artifact: UploadResult) -> tuple[dict[str, Any], dict[str, Any]]:
        """(manifests ConfigMap, artifact metadata ConfigMap), both annotated with this run."""
        p = self.pipeline
        namespace = self.settings.namespace
        annotations = build_annotations(commit=self.checkout["commit_sha"], git_url=p.git_url, dag_id=self.dag_id,
                                        run_id=str(context["run_id"]), owner=p.owner)
        manifests = config_map(p.kustomize_manifests_config_map_name, namespace, p.labels, read_rendered_overlays(p),
                               annotations)
        metadata = config_map(p.worker_script_artifact_config_map_name, namespace, p.labels, {
            "bucket": artifact["bucket"],
            "path": artifact["key"],
            "content-hash": artifact["sha256"],
            "size-bytes": str(artifact["size_bytes"]),
        }, {**annotations, **artifact_annotations(artifact)})
        return manifests, metadata

    def _write(self, store: ConfigMapStore, manifest: dict[str, Any], still_ours: Any, artifact: UploadResult) -> str:
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
