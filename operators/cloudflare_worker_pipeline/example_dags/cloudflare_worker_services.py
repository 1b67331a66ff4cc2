"""Scheduled rebuilds (an Airflow DAG per service): one pipeline DAG for each entry of the services
file, rebuilding its branch head on its schedule. Each is visible, pausable and triggerable in the
UI like any DAG. The file's path is the ``[cloudflare_worker_pipeline] services_file`` setting;
without it, this file defines no DAG.
"""

from __future__ import annotations

from airflow.sdk import DAG
from airflow.sdk.configuration import conf

from cloudflare_worker_pipeline.pipeline import bundle_asset, pipeline_dag
from cloudflare_worker_pipeline.services import (
    ERRORS_DAG_ID,
    Service,
    ServiceEntryError,
    load_services,
    services_file_errors_dag,
)
from cloudflare_worker_pipeline.settings import PipelineSettings


def service_dags() -> dict[str, DAG]:
    """The DAGs of the services file named by the setting, by DAG id (read anew on every call)."""
    if not conf.get("cloudflare_worker_pipeline", "services_file", fallback="").strip():
        return {}  # nothing to parse: the settings are not even read
    settings = PipelineSettings.from_airflow_config()
    services_file = settings.services_file
    assert services_file is not None
    git_schemes = settings.git_url_schemes
    dags: dict[str, DAG] = {}
    errors: list[ServiceEntryError] = []
    for entry in load_services(services_file, git_schemes=git_schemes):
        if isinstance(entry, Service):
            dags[entry.dag_id] = pipeline_dag(
                entry.dag_id, asset=bundle_asset(f"cloudflare-worker-bundles/{entry.name}"),
                schedule=entry.schedule, defaults=entry.params,
                description=f"Scheduled rebuild of {entry.name} ({entry.schedule})", tags=("scheduled-rebuild",),
            )
        else:
            errors.append(entry)
    if errors:
        dags[ERRORS_DAG_ID] = services_file_errors_dag(errors, services_file)
    return dags


# Parsed as a DAG file (dags_folder pointing here) the DAGs land in this module; imported as part of
# the package (from a three-line DAG file), the importer asks for them.
if not __name__.startswith("cloudflare_worker_pipeline."):
    globals().update(service_dags())
