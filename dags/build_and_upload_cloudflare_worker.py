"""Build a Cloudflare Worker bundle, ship it to R2, and record it in Kubernetes ConfigMaps.

A port of the Tekton pipeline ``build-and-upload-cloudflare-worker``:

    validate_parameters >> checkout >> install >> bundle >> upload >> store_artifact_metadata
                           checkout >> kustomize_build            (in parallel with install..metadata)
    remove_workspace: teardown, runs whatever happened

Trigger with DAG-run conf using the spec's parameter names (``git-url``, ``r2-object-key``...).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from operators.artifact_metadata import StoreArtifactMetadataOperator
from operators.bundle import BundleWorkerOperator
from operators.checkout import CheckoutOperator
from operators.install import InstallDependenciesOperator
from operators.kustomize import KustomizeBuildOperator
from operators.parameters import dag_params
from operators.upload import UploadBundleOperator
from operators.validate import ValidateParametersOperator
from operators.workspace import RemoveWorkspaceOperator

with DAG(
    dag_id="build_and_upload_cloudflare_worker",
    description="git checkout -> install -> wrangler bundle -> R2 upload -> ConfigMaps",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=dag_params(),
    max_active_runs=4,
    default_args={"retries": 0, "retry_delay": timedelta(seconds=15), "max_retry_delay": timedelta(minutes=5)},
    tags=["cloudflare", "workers", "r2"],
) as dag:
    parameters = ValidateParametersOperator(task_id="validate_parameters")
    validated = parameters.output

    checkout = CheckoutOperator(task_id="checkout", parameters=validated, retries=2)
    install = InstallDependenciesOperator(task_id="install", parameters=validated, retries=1)
    bundle = BundleWorkerOperator(task_id="bundle", parameters=validated)
    upload = UploadBundleOperator(
        task_id="upload", parameters=validated, bundle=bundle.output, checkout=checkout.output,
        retries=3, retry_exponential_backoff=True,
    )
    metadata = StoreArtifactMetadataOperator(
        task_id="store_artifact_metadata", parameters=validated, artifact=upload.output, retries=3
    )
    kustomize = KustomizeBuildOperator(task_id="kustomize_build", parameters=validated, retries=1)
    cleanup = RemoveWorkspaceOperator(task_id="remove_workspace", parameters=validated)

    checkout >> install >> bundle >> upload >> metadata
    checkout >> kustomize
    [metadata, kustomize] >> cleanup.as_teardown(setups=parameters)
