"""S3Hook configured for Cloudflare R2 (or any S3-compatible endpoint given per run)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper
from botocore.config import Config

# boto3 >= 1.36 sends CRC checksums by default, which R2 rejects; checksums are sent only when
# an operation requires one, and ours carries a precomputed SHA-256 instead.
R2_BOTOCORE_CONFIG = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
    "retries": {"mode": "standard", "max_attempts": 4},
    "connect_timeout": 10,
    "read_timeout": 60,
}


class R2Hook(S3Hook):
    """An ``S3Hook`` whose endpoint comes from the run (``r2-endpoint-url``), region ``auto``.

    Credentials come only from the Airflow connection (type ``aws``); the endpoint in the
    connection's extra, if any, is overridden by the run's.
    """

    def __init__(self, *, endpoint_url: str, aws_conn_id: str, **kwargs: Any) -> None:
        super().__init__(aws_conn_id=aws_conn_id, region_name="auto", config=Config(**R2_BOTOCORE_CONFIG), **kwargs)
        self.endpoint_url = endpoint_url

    @cached_property
    def conn_config(self) -> AwsConnectionWrapper:
        wrapper = super().conn_config
        wrapper.endpoint_url = self.endpoint_url
        return wrapper

