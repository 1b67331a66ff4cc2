"""Scheduled rebuilds (an Airflow DAG per service): one pipeline DAG for each entry of the services
file, rebuilding its branch head on its schedule. Each is visible, pausable and triggerable in the
UI like any DAG. The file's path is the ``[cloudflare_worker_pipeline] services_file`` setting;
without it, this file defines no DAG.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk.configuration import conf

from operators.pipeline import bundle_asset, pipeline_dag
from operators.services import Service, invalid_service_dag, load_services

_services_file = conf.get("cloudflare_worker_pipeline", "services_file", fallback="")
_allow_file = conf.getboolean("cloudflare_worker_pipeline", "allow_file_git_urls", fallback=False)

if _services_file:
    for _index, _entry in enumerate(load_services(Path(_services_file), allow_file_git_urls=_allow_file)):
        if isinstance(_entry, Service):
            globals()[_entry.dag_id] = pipeline_dag(
                _entry.dag_id, asset=bundle_asset(f"cloudflare-worker-bundles/{_entry.name}"),
                schedule=_entry.schedule, defaults=_entry.params,
                description=f"Scheduled rebuild of {_entry.name} ({_entry.schedule})", tags=("scheduled-rebuild",),
            )
        else:
            globals()[f"invalid_service_entry_{_index}"] = invalid_service_dag(_entry, _index)
