"""docker-compose.yaml's s3-init: create the bucket in the S3 server standing in for R2 (once it
answers). The tests run this file against SeaweedFS outside Docker."""

from __future__ import annotations

import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError


def main() -> None:
    endpoint, bucket = os.environ["S3_ENDPOINT_URL"], os.environ["S3_BUCKET"]
    client = boto3.client("s3", endpoint_url=endpoint, region_name="auto",
                          aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                          config=Config(request_checksum_calculation="when_required"))
    for attempt in range(60):
        try:
            client.create_bucket(Bucket=bucket)
            break
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                break
            raise
        except EndpointConnectionError:
            if attempt == 59:
                raise
            time.sleep(1)
    print(f"s3-init: bucket {bucket} ready at {endpoint}", flush=True)


if __name__ == "__main__":
    main()
