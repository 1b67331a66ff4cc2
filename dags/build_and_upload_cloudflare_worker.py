"""Airflow DAG: build a Cloudflare Worker bundle, ship it to R2, record it in Kubernetes ConfigMaps.

The DAG is the package's example DAG; this file only puts it in this ``dags_folder``.
"""

from cloudflare_worker_pipeline.example_dags.build_and_upload_cloudflare_worker import dag

__all__ = ["dag"]
