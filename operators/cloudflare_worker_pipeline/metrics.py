"""What the pipeline reports to Airflow's metrics (StatsD or OpenTelemetry, as the deployment
configures ``[metrics]``): how long each stage took, and how big each bundle is, so a dashboard
shows a bundle's size over time and which stage got slower.

Names carry the DAG id for StatsD (which has no tags); tags carry it too for OpenTelemetry.
"""

from __future__ import annotations

import datetime
from typing import Any

PREFIX = "cloudflare_worker_pipeline"


def _stats() -> Any:
    try:  # Airflow 3.3+
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow 3.2
        from airflow.stats import Stats
    return Stats


def stage_duration(dag_id: str, task_id: str, seconds: float) -> None:
    """``cloudflare_worker_pipeline.stage_duration.<dag_id>.<task_id>``, a timer."""
    _stats().timing(f"{PREFIX}.stage_duration.{dag_id}.{task_id}", datetime.timedelta(seconds=seconds),
                    tags={"dag_id": dag_id, "task_id": task_id})


def bundle_size(dag_id: str, size_bytes: int) -> None:
    """``cloudflare_worker_pipeline.bundle_size_bytes.<dag_id>``, a gauge."""
    _stats().gauge(f"{PREFIX}.bundle_size_bytes.{dag_id}", size_bytes, tags={"dag_id": dag_id})
