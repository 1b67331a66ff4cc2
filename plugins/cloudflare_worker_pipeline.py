"""Airflow plugin: registers the pipeline's extra links so the UI shows them.

Place this folder as (or copy the file into) Airflow's ``plugins_folder``; the links themselves
live in the ``operators`` package, next to the operators that carry them.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators.links import CommitLink, R2ObjectLink


class CloudflareWorkerPipelinePlugin(AirflowPlugin):
    name = "cloudflare_worker_pipeline"
    operator_extra_links = [CommitLink(), R2ObjectLink()]  # noqa: RUF012 - AirflowPlugin declares it a list
