"""The Kubernetes mode's egress proxy: ``python -m cloudflare_worker_pipeline.egress_proxy``.

Stage pods get no route out but this one (``examples/kubernetes/egress-proxy.yaml`` and its
NetworkPolicies): install's fetch pods reach its registry listener, checkout pods its git
listener, and each listener admits only what the local mode's per-stage proxy admits
(:mod:`cloudflare_worker_pipeline.egress_policies`), read from the same settings. Each
connection is logged as one JSON line with the asking pod's address, for the cluster's logging.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict
from functools import partial
from typing import TextIO

from cloudflare_worker_pipeline.egress_policies import git_egress, registry_egress
from cloudflare_worker_pipeline.execution.egress import EgressPolicy, EgressProxy, EgressRecord
from cloudflare_worker_pipeline.settings import PipelineSettings

REGISTRY_PORT = 3128
GIT_PORT = 3129


def start(listeners: dict[str, tuple[EgressPolicy, tuple[str, int]]], out: TextIO) -> dict[str, EgressProxy]:
    """A proxy per listener name, each logging its connections to ``out`` as JSON lines."""
    lock = threading.Lock()

    def log(name: str, record: EgressRecord) -> None:
        with lock:
            out.write(json.dumps({"listener": name, **asdict(record)}, sort_keys=True) + "\n")
            out.flush()

    return {name: EgressProxy(policy, listen=address, on_record=partial(log, name), keep_records=False)
            for name, (policy, address) in listeners.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudflare_worker_pipeline.egress_proxy", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0",  # noqa: S104 - a pod serving other pods, behind its NetworkPolicy
                        help="the address to listen on (default: all of the pod's)")
    parser.add_argument("--registry-port", type=int, default=REGISTRY_PORT, help="install's fetch pods (pod_registry_proxy)")
    parser.add_argument("--git-port", type=int, default=GIT_PORT, help="checkout pods (pod_git_proxy)")
    args = parser.parse_args(argv)
    settings = PipelineSettings.from_airflow_config()
    proxies = start({"registry": (registry_egress(settings), (args.host, args.registry_port)),
                     "git": (git_egress(settings), (args.host, args.git_port))}, sys.stdout)
    for name, proxy in proxies.items():
        host, port = proxy.address
        print(json.dumps({"listening": f"{host}:{port}", "listener": name, "hosts": list(proxy.policy.hosts),
                          "ports": sorted(proxy.policy.ports)}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for proxy in proxies.values():
        proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
