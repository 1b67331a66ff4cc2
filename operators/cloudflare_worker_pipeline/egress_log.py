"""The build's egress log: every host the build reached, stored beside the bundle as
``<r2-object-key>.egress.json`` before the bundle itself.

The worker's egress proxy records each connection checkout (git) and install's fetch (the package
manager) asked for: host, port, whether it was allowed, and the bytes each way (issue 19). Every
other stage has no network at all. A reviewer reads here what a build fetched from where, and
that nothing else was tried; the provenance statement names this file among its byproducts.

A stage whose connections the worker cannot see (a pod, whose proxy is a Deployment logging them
itself; ``sandbox = none``, on the host's network) is ``"recorded": false``, never an empty list.
"""

from __future__ import annotations

import json
from typing import Any

from cloudflare_worker_pipeline.results import EgressEntry

LOG_TYPE = "https://cloudflare-worker-pipeline.planton.cloud/egress-log/v1"
EGRESS_LOG_METADATA = "egress-log-sha256"  # the bundle object's metadata: SHA-256 of its egress log


def egress_log_key(bundle_key: str) -> str:
    return f"{bundle_key}.egress.json"


def egress_log(*, key: str, commit: str, invocation: str, stages: dict[str, list[EgressEntry] | None]) -> bytes:
    """The log of ``stages`` (stage name -> its proxy's entries, or None when not recorded)."""
    document: dict[str, Any] = {
        "_type": LOG_TYPE,
        "object": key,
        "commit": commit,
        "invocationId": invocation,
        "stages": {stage: ({"recorded": True, "connections": entries} if entries is not None else
                           {"recorded": False, "connections": []}) for stage, entries in stages.items()},
    }
    return json.dumps(document, sort_keys=True, indent=1).encode()
