"""Build a Cloudflare Worker bundle, ship it to R2, and record it in Kubernetes ConfigMaps (an Airflow DAG).

Triggered with DAG-run conf using the spec's parameter names (``git-url``, ``r2-object-key``...)
from the service catalogue's REST calls or the UI's trigger form. The task graph is in
``cloudflare_worker_pipeline/pipeline.py``:

    setup >> checkout >> install >> [bundle, typecheck] >> upload >> publish
             checkout >> kustomize_build ──────────────> upload, publish
    remove_workspace: teardown, runs whatever happened
"""

from __future__ import annotations

from cloudflare_worker_pipeline.get_provider_info import MAIN_DAG_ID
from cloudflare_worker_pipeline.pipeline import bundle_asset, pipeline_dag

dag = pipeline_dag(MAIN_DAG_ID, asset=bundle_asset("cloudflare-worker-bundles"),
                   doc_md=__doc__)
