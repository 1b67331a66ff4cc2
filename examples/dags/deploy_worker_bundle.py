"""Example downstream Airflow DAG: runs whenever the pipeline uploads a new bundle.

Scheduled on the pipeline's Asset; each triggering event's ``extra`` carries the object (bucket,
key, artifact URL), its SHA-256 and size, and the commit it was built from. A real deploy would
hand these to Pulumi or the Cloudflare API; this example returns them, so the run shows them.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task
from cloudflare_worker_pipeline.pipeline import bundle_asset

with DAG(
    dag_id="deploy_worker_bundle",
    schedule=[bundle_asset("cloudflare-worker-bundles")],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudflare", "example"],
):

    @task
    def bundle_to_deploy(*, triggering_asset_events: Any = None) -> dict[str, Any]:
        events = [event for per_asset in (triggering_asset_events or {}).values() for event in per_asset]
        latest = events[-1].extra
        print(f"Would deploy s3://{latest['bucket']}/{latest['key']} (sha256 {latest['sha256']}, commit {latest['commit_sha']})")
        return dict(latest)

    bundle_to_deploy()
