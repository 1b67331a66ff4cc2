"""The pipeline's task graph, built once for the triggered DAG and for every scheduled service.

    setup >> checkout >> install >> [bundle ────> upload] >> publish
                         install >> [typecheck ─┤       ]
              checkout >> kustomize_build ──────┴────────────> publish
    remove_workspace: the teardown of setup, runs whatever happened

    setup validates the parameters, then prepares the workspace: two steps, one task (each hop
    between tasks is a trip through the scheduler). [ ]: the task group ``workers``, mapped over
    the run's workers (``setup`` returns them): one bundle, typecheck and upload per worker, all
    sharing the checkout and the install.

``upload`` waits for the overlays too, and ``publish`` writes both ConfigMaps (artifact metadata
and manifests) once every upload has succeeded: a release is published whole or not at all, and a
fixed ``r2-object-key`` is never replaced by a build whose overlays fail.
When the object at the key already holds this build, ``checkout`` skips install, bundle, typecheck and
upload (they show as skipped) and ``publish`` verifies the stored object instead; with several
workers, the stored ones' bundles skip themselves.

A port of the Tekton pipeline ``build-and-upload-cloudflare-worker``. Importing this module is
cheap: the operators import their provider hooks inside ``execute()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, BaseOperator, XComArg, task_group

from cloudflare_worker_pipeline.get_provider_info import SECTION
from cloudflare_worker_pipeline.operators.bundle import BundleWorkerOperator
from cloudflare_worker_pipeline.operators.checkout import CheckoutOperator
from cloudflare_worker_pipeline.operators.install import InstallDependenciesOperator
from cloudflare_worker_pipeline.operators.kustomize import KustomizeBuildOperator
from cloudflare_worker_pipeline.operators.publish import PublishReleaseOperator
from cloudflare_worker_pipeline.operators.setup import PARAMETERS_XCOM, SETUP_TASK_ID, SetupRunOperator
from cloudflare_worker_pipeline.operators.typecheck import TypeCheckOperator
from cloudflare_worker_pipeline.operators.upload import UploadBundleOperator
from cloudflare_worker_pipeline.operators.workspace import RemoveWorkspaceOperator
from cloudflare_worker_pipeline.parameters import dag_params
from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError
from cloudflare_worker_pipeline.task_docs import RUNBOOK, TASK_DOCS

# Every task has a deadline; stage scripts also stop at the stage_timeout_seconds setting.
DEFAULT_ARGS = {"retry_delay": timedelta(seconds=15), "max_retry_delay": timedelta(minutes=5),
                "execution_timeout": timedelta(minutes=30)}
# Retries where a retry can help: network steps and API writes. Settings and arguments override.
STAGE_RETRIES = {"setup": 0, "checkout": 2, "install": 1, "bundle": 0,
                 "typecheck": 0, "upload": 3, "kustomize_build": 1, "publish": 3, "remove_workspace": 0}


def _imported(path: str) -> Any:
    """The object an import path names (the ``failure_callback`` setting); SettingsError when absent."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise SettingsError(f"[{SECTION}] failure_callback: cannot import {path!r}: {error}") from None


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
    owner: str | None = None,
    retries: Mapping[str, int] | None = None,
    pool: str | None = None,
    max_active_runs: int | None = None,
    on_failure_callback: Any = None,
) -> DAG:
    """A DAG running the pipeline.

    :param defaults: pre-filled parameters (a scheduled service's own).
    :param owner, retries, pool, max_active_runs, on_failure_callback: override the settings
        ``dag_owner``, ``stage_retries`` (task id -> retries), ``pool``, ``max_active_runs`` and
        ``failure_callback`` (a callable or notifier, or a list of them, run when a task fails).
    """
    settings = PipelineSettings.from_airflow_config()  # configuration only: no network at parse time
    tries = {**STAGE_RETRIES, **settings.stage_retries, **(retries or {})}
    unknown = sorted(set(tries) - set(STAGE_RETRIES))
    if unknown:
        raise ValueError(f"retries: unknown task id(s) {', '.join(unknown)}; the tasks are {', '.join(STAGE_RETRIES)}")
    callback = on_failure_callback or (_imported(settings.failure_callback) if settings.failure_callback else None)
    default_args = {**DEFAULT_ARGS, "owner": owner or settings.dag_owner,
                    **({"pool": pool or settings.pool} if pool or settings.pool else {}),
                    **({"on_failure_callback": callback} if callback else {})}
    with DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md or RUNBOOK,
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=max_active_runs or settings.max_active_runs,
        default_args=default_args,
        tags=["cloudflare", "workers", "r2", *tags],
    ) as dag:
        def stage(operator: type[BaseOperator], task_id: str, **kwargs: Any) -> Any:
            return operator(task_id=task_id, retries=tries[task_id], doc_md=TASK_DOCS[task_id], **kwargs)

        setup = stage(SetupRunOperator, SETUP_TASK_ID)
        validated = XComArg(setup, key=PARAMETERS_XCOM)

        checkout = stage(CheckoutOperator, "checkout", parameters=validated)
        node = {"parameters": validated, "checkout": checkout.output}  # the stages running the project's Node
        install = stage(InstallDependenciesOperator, "install", **node)

        kustomize = stage(KustomizeBuildOperator, "kustomize_build", parameters=validated)

        @task_group(group_id="workers", prefix_group_id=False, tooltip="bundle, typecheck and upload, per worker")
        def each_worker(worker: Any) -> None:
            bundle = stage(BundleWorkerOperator, "bundle", worker=worker, **node)
            typecheck = stage(TypeCheckOperator, "typecheck", worker=worker, **node)
            upload = stage(UploadBundleOperator, "upload", worker=worker, parameters=validated, bundle=bundle.output,
                           checkout=checkout.output, install=install.output, retry_exponential_backoff=True)
            install >> [bundle, typecheck] >> upload
            kustomize >> upload  # the overlays render before anything is written

        workers = each_worker.expand(worker=setup.output)
        # publish reads the parameters from setup's XCom itself: it runs after skipped stages (none_failed),
        # and Airflow lets only all_success tasks follow a setup task directly
        publish = stage(PublishReleaseOperator, "publish", checkout=checkout.output,
                        upload_task_id="upload", outlets=[asset])
        cleanup = stage(RemoveWorkspaceOperator, "remove_workspace", parameters=validated)

        setup >> checkout >> install >> workers >> publish
        checkout >> kustomize >> publish
        publish >> cleanup.as_teardown(setups=setup)
    # The parameters join the DAG once its tasks exist: Airflow deep-copies a DAG's params into every
    # operator it constructs (at each class level of its __init__), two thirds of this file's parse
    # time with 24 schemas. Tasks need no copy: a task's context merges the DAG's params when it runs.
    dag.params.update(dag_params(defaults))
    return dag
