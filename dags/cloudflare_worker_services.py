"""Airflow DAGs: one scheduled rebuild DAG per service of the ``services_file`` setting, and one DAG
reporting the file's invalid entries, if any. The DAGs come from the package; this file only puts
them in this ``dags_folder``, reading the services file anew at every parse.
"""

# Pre-imported once by the dag-processor, not at every parse (see build_and_upload_cloudflare_worker.py);
import airflow.sdk.definitions.decorators
import airflow.sdk.definitions.timetables.interval
import airflow.timetables.base  # noqa: F401
from cloudflare_worker_pipeline.example_dags.cloudflare_worker_services import service_dags

globals().update(service_dags())
