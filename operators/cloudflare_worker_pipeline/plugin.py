"""The Airflow plugin: registers the pipeline's extra links (Commit, R2 object) so the UI shows them.

Registered through the package's ``airflow.plugins`` entry point when the package is installed;
``plugins/cloudflare_worker_pipeline_plugin.py`` imports it for a ``plugins_folder`` deployment.
Airflow skips a second registration under the same name.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cloudflare_worker_pipeline.links import CommitLink, R2ObjectLink


class CloudflareWorkerPipelinePlugin(AirflowPlugin):
    name = "cloudflare_worker_pipeline"
    operator_extra_links = [CommitLink(), R2ObjectLink()]  # noqa: RUF012 - AirflowPlugin declares it a list
