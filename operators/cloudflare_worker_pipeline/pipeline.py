"""The pipeline's task graph, built once for the triggered DAG and for every scheduled service.

    validate_parameters >> prepare_workspace >> checkout >> install >> bundle >> upload >> publish
                                                checkout >> kustomize_build ────────────> publish
    remove_workspace: the teardown of prepare_workspace, runs whatever happened

``publish`` writes both ConfigMaps (artifact metadata and manifests) once the upload and the
kustomize branch have both succeeded: a release is published whole or not at all.

A port of the Tekton pipeline ``build-and-upload-cloudflare-worker``. Importing this module is
cheap: the operators import their provider hooks inside ``execute()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset

from cloudflare_worker_pipeline.operators.bundle import BundleWorkerOperator
from cloudflare_worker_pipeline.operators.checkout import CheckoutOperator
from cloudflare_worker_pipeline.operators.install import InstallDependenciesOperator
from cloudflare_worker_pipeline.operators.kustomize import KustomizeBuildOperator
from cloudflare_worker_pipeline.operators.publish import PublishReleaseOperator
from cloudflare_worker_pipeline.operators.upload import UploadBundleOperator
from cloudflare_worker_pipeline.operators.validate import ValidateParametersOperator
from cloudflare_worker_pipeline.operators.workspace import PrepareWorkspaceOperator, RemoveWorkspaceOperator
from cloudflare_worker_pipeline.parameters import dag_params

# Every task has a deadline; stage scripts also stop at the stage_timeout_seconds setting.
DEFAULT_ARGS = {"retries": 0, "retry_delay": timedelta(seconds=15), "max_retry_delay": timedelta(minutes=5),
                "execution_timeout": timedelta(minutes=30)}


def bundle_asset(name: str) -> Asset:
    """The asset a pipeline's uploads update; each event's extra says which object, hash and commit."""
    return Asset(name=name, uri=f"x-cloudflare-worker-bundle://{name}", group="cloudflare-worker-bundles")


def pipeline_dag(
    dag_id: str,
    *,
    asset: Asset,
    schedule: Any = None,
    defaults: Mapping[str, str] | None = None,
    description: str = "git checkout -> install -> wrangler bundle -> R2 upload -> ConfigMaps",
    doc_md: str | None = None,
    tags: tuple[str, ...] = (),
) -> DAG:
    """A DAG running the pipeline; ``defaults`` pre-fill parameters (a scheduled service's own)."""
    with DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md or __doc__,
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        params=dag_params(defaults),
        max_active_runs=4,
        default_args=DEFAULT_ARGS,
        tags=["cloudflare", "workers", "r2", *tags],
    ) as dag:
        parameters = ValidateParametersOperator(task_id="validate_parameters")
        validated = parameters.output

        workspace = PrepareWorkspaceOperator(task_id="prepare_workspace", parameters=validated)
        checkout = CheckoutOperator(task_id="checkout", parameters=validated, retries=2)
        install = InstallDependenciesOperator(task_id="install", parameters=validated, retries=1)
        bundle = BundleWorkerOperator(task_id="bundle", parameters=validated)
        upload = UploadBundleOperator(task_id="upload", parameters=validated, bundle=bundle.output,
                                      checkout=checkout.output, retries=3, retry_exponential_backoff=True)
        kustomize = KustomizeBuildOperator(task_id="kustomize_build", parameters=validated, checkout=checkout.output,
                                           retries=1)
        publish = PublishReleaseOperator(task_id="publish", parameters=validated, artifact=upload.output,
                                         checkout=checkout.output, outlets=[asset], retries=3)
        cleanup = RemoveWorkspaceOperator(task_id="remove_workspace", parameters=validated)

        parameters >> workspace >> checkout >> install >> bundle >> upload >> publish
        checkout >> kustomize >> publish
        publish >> cleanup.as_teardown(setups=workspace)
    return dag
