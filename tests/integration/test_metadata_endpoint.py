"""Issue 19, attack (b): a listener on a non-loopback local address, standing in for a cloud
metadata endpoint (169.254.169.254, answering with role credentials).

It runs in a network namespace of its own (``unshare -rn``), so the address exists on the
"worker" without touching the host's network; there, the same probe runs in a stage's sandbox
and as a plain process (tests/fixtures/network/metadata_namespace.py). The plain process gets
the credentials, which shows the stand-in answers; the sandbox reaches nothing, directly or
through the egress proxy, even with the most generous allowlist (``*``).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import FIXTURES


def test_a_metadata_endpoint_on_the_worker_is_out_of_a_stages_reach_directly_and_through_the_proxy() -> None:
    probe = subprocess.run(["unshare", "-rn", sys.executable, str(FIXTURES / "network" / "metadata_namespace.py")],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout)

    assert found["unsandboxed"]["direct"] == "reached: role-credentials", "the stand-in must answer a plain process"
    assert found["sandboxed"]["direct"].startswith("error "), found  # no route: the sandbox's loopback only
    assert found["sandboxed"]["proxied"] == "HTTP/1.1 403 Forbidden", found
    assert found["proxy_records"] and all(not record["allowed"] and "link-local" in record["reason"]
                                          for record in found["proxy_records"]), found
