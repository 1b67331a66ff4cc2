"""Airflow DAG: build a Cloudflare Worker bundle, ship it to R2, record it in Kubernetes ConfigMaps.

The DAG is the package's example DAG; this file only puts it in this ``dags_folder``.
"""

# The Airflow modules the pipeline's graph is built from. The dag-processor imports the airflow.*
# modules a DAG file names once, before it forks a process per parse ([dag_processor]
# parsing_pre_import_modules, on by default), so naming them here keeps their import out of every
# parse: the task_group decorator (the mapped workers group) and what every DAG's timetable loads.
import airflow.sdk.definitions.decorators
import airflow.sdk.definitions.timetables.interval
import airflow.timetables.base  # noqa: F401
from cloudflare_worker_pipeline.example_dags.build_and_upload_cloudflare_worker import dag

__all__ = ["dag"]
