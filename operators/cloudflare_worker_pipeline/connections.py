"""Airflow connections the pipeline may or may not be given."""

from __future__ import annotations

from typing import Any


def optional_connection(conn_id: str) -> Any | None:
    """The connection, or None when it is not configured (some connections are optional)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
