"""Validation of the run's parameters and of the deployment: the gate before anything is cloned
or written. In the kubernetes mode it also prepares the workspace volume (the run's setup)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.allowed_hosts import HostNotAllowedError, check_host, check_r2_endpoint
from cloudflare_worker_pipeline.execution.base import TaskLog
from cloudflare_worker_pipeline.execution.sandbox import SandboxUnavailableError, check_sandbox
from cloudflare_worker_pipeline.get_provider_info import SECTION
from cloudflare_worker_pipeline.hooks.configmaps import check_config_map_owner
from cloudflare_worker_pipeline.hooks.workspace_claims import claim_for_run, create_run_claim, existing_claim_problem
from cloudflare_worker_pipeline.ownership import (
    ConfigMapOwnedElsewhereError,
    ObjectOwnedElsewhereError,
    check_object_owner,
)
from cloudflare_worker_pipeline.parameters import InvalidParameterError, PipelineParameters, git_host
from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError


def run_workspace(settings: PipelineSettings, dag_id: str, run_id: str) -> Path:
    """Where the worker sees the run's workspace.

    A per-run claim is mounted on workers at ``<workspace_root>/<claim name>``; otherwise the run
    gets ``<workspace_root>/<dag_id>/<run>``, readable and unique even where run ids sanitise alike.
    """
    if settings.execution_mode == "kubernetes" and not settings.pods.workspace_claim:
        return settings.workspace_root / claim_for_run(dag_id, run_id)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)[:80]
    digest = hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:10]
    return settings.workspace_root / dag_id / f"{safe}-{digest}"


def check_allowed_hosts(parameters: PipelineParameters, settings: PipelineSettings) -> None:
    """The endpoint and the git host are on the deployment's allowlists and resolve where allowed."""
    check_r2_endpoint(parameters.r2_endpoint_url, settings.allowed_r2_endpoints)
    host = git_host(parameters.git_url)
    if host is not None:
        check_host(host, settings.allowed_git_hosts, parameter="git-url", setting="allowed_git_hosts")


def check_owners(parameters: PipelineParameters, settings: PipelineSettings, log: TaskLog) -> None:
    """Refuse now what belongs to another owner, before anything is built.

    Best effort: when the API or the endpoint cannot answer yet, the run goes on and the write
    itself checks (and fails with the stage's own error, e.g. the spec's ``upload: failed: ...``).
    """
    for parameter, name in (("worker-script-artifact-config-map-name", parameters.worker_script_artifact_config_map_name),
                            ("kustomize-manifests-config-map-name", parameters.kustomize_manifests_config_map_name)):
        try:
            check_config_map_owner(name, parameters.owner, settings)
        except ConfigMapOwnedElsewhereError as error:
            raise ConfigMapOwnedElsewhereError(f"Invalid parameter '{parameter}': {error}") from None
        except Exception as error:  # the API server's trouble is the write's to report
            log.warning("Could not check the owner of ConfigMap %s now (%s); its write checks again", name,
                        type(error).__name__)
    if "{" in parameters.r2_object_key:
        return  # the key names the commit, unknown until checkout: the upload checks it
    from cloudflare_worker_pipeline.hooks.r2 import R2Hook

    target = f"s3://{parameters.r2_bucket_name}/{parameters.r2_object_key}"
    try:
        client = R2Hook(endpoint_url=parameters.r2_endpoint_url, aws_conn_id=settings.r2_conn_id).get_conn()
        check_object_owner(client, parameters.r2_bucket_name, parameters.r2_object_key, parameters.owner)
    except ObjectOwnedElsewhereError as error:
        raise ObjectOwnedElsewhereError(f"Invalid parameter 'r2-object-key': {target} {error}") from None
    except Exception as error:  # unreachable, refused credentials...: the upload reports it
        log.warning("Could not check the owner of %s now (%s); the upload checks again", target, type(error).__name__)


class ValidateParametersOperator(BaseOperator):
    """Check every parameter and the deployment, and return the parameters for the stages.

    Bad input fails here, once and without retries, naming the parameter; nothing has been
    cloned, uploaded or written yet. A deployment that cannot work (say, a workspace claim the
    upload task could never read) fails here too, saying why.
    """

    ui_color = "#fbd38d"

    def execute(self, context: Any) -> dict[str, Any]:
        try:
            settings = PipelineSettings.from_airflow_config()
            workspace = run_workspace(settings, self.dag_id, context["run_id"])
            parameters = PipelineParameters.from_conf(
                dict(context["params"]), workspace=str(workspace), allow_file_git_urls=settings.allow_file_git_urls
            )
            check_allowed_hosts(parameters, settings)
            check_owners(parameters, settings, self.log)
            if settings.execution_mode == "kubernetes":
                self._check_kubernetes_deployment(settings)
            elif settings.sandbox != "none":
                check_sandbox(workspace.parent / f".sandbox-check-{workspace.name}")
        except (InvalidParameterError, HostNotAllowedError, SettingsError, SandboxUnavailableError,
                ConfigMapOwnedElsewhereError, ObjectOwnedElsewhereError) as error:
            raise AirflowFailException(str(error)) from None
        self.log.info(
            "Building %s at %s (project root %s) into s3://%s/%s; workspace %s (%s mode)",
            parameters.git_url, parameters.git_revision, parameters.project_root,
            parameters.r2_bucket_name, parameters.r2_object_key, parameters.workspace, settings.execution_mode,
        )
        if settings.execution_mode == "kubernetes" and not settings.pods.workspace_claim:
            claim = claim_for_run(self.dag_id, context["run_id"])
            create_run_claim(settings, claim, {"app.kubernetes.io/part-of": "cloudflare-worker-pipeline",
                                               **parameters.owner_labels})
            self.log.info("Created PersistentVolumeClaim %s/%s (%s, %s) for this run's workspace",
                          settings.namespace, claim, settings.pods.workspace_size, settings.pods.workspace_access_mode)
        return parameters.to_dict()

    def _check_kubernetes_deployment(self, settings: PipelineSettings) -> None:
        """The upload and kustomize_build tasks read the workspace on the worker: can they?"""
        from airflow.sdk.configuration import conf

        if settings.pods.workspace_claim:
            problem = existing_claim_problem(settings)
            if problem:
                raise SettingsError(f"[{SECTION}] workspace_claim: {problem}")
            if not settings.workspace_root.is_dir():
                raise SettingsError(
                    f"[{SECTION}] workspace_root: {settings.workspace_root} is not on this worker. In the kubernetes "
                    f"mode workers read bundles and rendered manifests from claim {settings.pods.workspace_claim!r}: "
                    "mount it there (a ReadWriteMany claim on Celery workers; cloudflare_worker_pipeline.hooks.workspace_claims."
                    "mount_workspace in pod_mutation_hook for KubernetesExecutor)"
                )
            return
        executor = str(conf.get("core", "executor", fallback=""))
        if "KubernetesExecutor" not in executor:
            raise SettingsError(
                f"[{SECTION}] workspace_claim is empty, so each run gets its own claim, which only KubernetesExecutor "
                f"worker pods can mount (through cloudflare_worker_pipeline.hooks.workspace_claims.mount_workspace in pod_mutation_hook); "
                f"the executor is {executor!r}: set workspace_claim to an existing ReadWriteMany claim mounted at "
                f"workspace_root ({settings.workspace_root}) on every worker"
            )
