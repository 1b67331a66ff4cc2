"""Validation of the run's parameters and of the deployment: the gate before anything is cloned
or written. It only reads. The first step of the run's ``setup`` task (:mod:`.setup`)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cloudflare_worker_pipeline.allowed_hosts import HostNotAllowedError, check_host, check_r2_endpoint
from cloudflare_worker_pipeline.config_maps import ConfigMapStore, config_map_store
from cloudflare_worker_pipeline.connections import optional_connection
from cloudflare_worker_pipeline.execution.base import TaskLog
from cloudflare_worker_pipeline.git_ssh import check_ssh_access
from cloudflare_worker_pipeline.modes import ExecutionMode
from cloudflare_worker_pipeline.ownership import (
    OWNER_ANNOTATION,
    ConfigMapOwnedElsewhereError,
    ObjectOwnedElsewhereError,
    check_object_owner,
    check_ownership,
)
from cloudflare_worker_pipeline.parameter_workers import parameter_name
from cloudflare_worker_pipeline.parameters import InvalidParameterError, PipelineParameters, git_host
from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError
from cloudflare_worker_pipeline.signing import ProvenanceSigningError, run_signer
from cloudflare_worker_pipeline.tenants import TenantMapError, check_grants, load_tenants
from cloudflare_worker_pipeline.workspace import run_workspace


def check_allowed_hosts(parameters: PipelineParameters, settings: PipelineSettings) -> None:
    """The endpoint and the git host are on the deployment's allowlists and resolve where allowed."""
    check_r2_endpoint(parameters.r2_endpoint_url, settings.allowed_r2_endpoints)
    host = git_host(parameters.git_url)
    if host is not None:
        check_host(host, settings.allowed_git_hosts, parameter="git-url", setting="allowed_git_hosts")


def check_owners(parameters: PipelineParameters, settings: PipelineSettings, store: ConfigMapStore,
                 log: TaskLog) -> None:
    """Refuse now what belongs to another owner, before anything is built.

    Best effort: when the API or the endpoint cannot answer yet, the run goes on and the write
    itself checks (and fails with the stage's own error, e.g. the spec's ``upload: failed: ...``).
    """
    config_maps = [("kustomize-manifests-config-map-name", parameters.kustomize_manifests_config_map_name)]
    keys = []
    for worker in parameters.workers:
        config_maps.append((parameter_name(worker, "worker-script-artifact-config-map-name"),
                            worker["worker_script_artifact_config_map_name"]))
        keys.append((parameter_name(worker, "r2-object-key"), worker["r2_object_key"]))
    for parameter, name in config_maps:
        ours = {"metadata": {"name": name, "namespace": settings.namespace,
                             "annotations": {OWNER_ANNOTATION: parameters.owner}}}
        try:
            check_ownership(store.metadata(name, settings.namespace), ours)
        except ConfigMapOwnedElsewhereError as error:
            raise ConfigMapOwnedElsewhereError(f"Invalid parameter '{parameter}': {error}") from None
        except Exception as error:  # the API server's trouble is the write's to report
            log.warning("Could not check the owner of ConfigMap %s now (%s); its write checks again", name,
                        type(error).__name__)
    for parameter, key in keys:
        if "{" not in key:  # else the key names the commit, unknown until checkout: the upload checks it
            check_object(parameters, settings, parameter, key, log)


def check_object(parameters: PipelineParameters, settings: PipelineSettings, parameter: str, key: str,
                 log: TaskLog) -> None:
    """The object at a fixed key is not another owner's."""
    from cloudflare_worker_pipeline.hooks.r2 import R2Hook

    target = f"s3://{parameters.r2_bucket_name}/{key}"
    try:
        hook = R2Hook(endpoint_url=parameters.r2_endpoint_url, aws_conn_id=settings.r2_conn_id)
        stored = hook.stored(parameters.r2_bucket_name, key)
        check_object_owner(stored.metadata if stored else None, parameters.owner,
                           adopt_unowned=settings.adopt_unowned_objects,
                           repository=parameters.git_url if parameters.force_rebuild else None)
    except ObjectOwnedElsewhereError as error:
        raise ObjectOwnedElsewhereError(f"Invalid parameter '{parameter}': {target} {error}") from None
    except Exception as error:  # unreachable, refused credentials...: the upload reports it
        log.warning("Could not check the owner of %s now (%s); the upload checks again", target, type(error).__name__)


def validate_run(settings: PipelineSettings, dag_id: str, context: Any, log: TaskLog) -> PipelineParameters:
    """Check every parameter and the deployment; the parameters the stages read.

    Bad input fails here, once and without retries, naming the parameter; nothing has been
    cloned, uploaded or written yet. A deployment that cannot work (a missing connection, a
    signer that cannot sign, a tenant map that cannot be read) fails here too, saying why.
    """
    try:
        workspace = run_workspace(settings, dag_id, str(context["run_id"]))
        parameters = PipelineParameters.from_conf(
            dict(context["params"]), workspace=str(workspace.path), git_schemes=settings.git_url_schemes
        )
        if parameters.bundle_size_limit_bytes > settings.max_bundle_bytes:
            raise InvalidParameterError("bundle-size-limit-bytes", f"at most {settings.max_bundle_bytes} (the "
                                        "deployment's setting max_bundle_bytes)", parameters.bundle_size_limit_bytes)
        if parameters.build_command and not settings.allow_build_command:
            raise InvalidParameterError("build-command", "none: this deployment runs no command a run names "
                                        "(setting allow_build_command = False)", list(parameters.build_command))
        tenants = load_tenants(settings.tenants)
        if tenants is not None:  # the deployment decides who owns what, not the run
            check_grants(parameters, tenants, context["dag_run"].triggering_user_name)
        check_allowed_hosts(parameters, settings)
        check_ssh_access(parameters.git_url, settings, optional_connection(settings.git_conn_id),
                         kubernetes=settings.execution_mode is ExecutionMode.KUBERNETES)
        run_signer(settings.provenance_signing_conn_id, settings.allow_unsigned_provenance)  # before any build
        store = config_map_store(settings)  # a missing connection fails here, before any build
        check_owners(parameters, settings, store, log)
    except (InvalidParameterError, HostNotAllowedError, SettingsError, TenantMapError, ProvenanceSigningError,
            ConfigMapOwnedElsewhereError, ObjectOwnedElsewhereError) as error:
        raise AirflowFailException(str(error)) from None
    log.info(
        "Building %s at %s (%s) in bucket %s; workspace %s (%s, %s mode); ConfigMaps to %s",
        parameters.git_url, parameters.git_revision, ", ".join(
            f"project root {w['project_root']} into {w['r2_object_key']}" for w in parameters.workers),
        parameters.r2_bucket_name, parameters.workspace, workspace.kind.value, settings.execution_mode.value,
        settings.configmap_destination.value,
    )
    return parameters
