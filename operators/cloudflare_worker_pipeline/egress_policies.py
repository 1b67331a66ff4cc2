"""Where the fetching stages may go: git for checkout, the package registries for install's fetch.

One definition for both modes: the local mode's per-stage proxy and the Kubernetes mode's proxy
Deployment (``egress_proxy``) admit exactly these hosts and ports, and leave through
``egress_upstream_proxy`` when the network has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from cloudflare_worker_pipeline.execution.egress import EgressPolicy
from cloudflare_worker_pipeline.settings import PipelineSettings

# install_env keys that name a registry the package managers (and corepack) fetch from.
REGISTRY_ENV = ("npm_config_registry", "NPM_CONFIG_REGISTRY", "COREPACK_NPM_REGISTRY", "YARN_NPM_REGISTRY_SERVER",
                "YARN_REGISTRY", "BUN_CONFIG_REGISTRY")
GIT_PORTS = frozenset({443, 9418, 22})  # https, git://, ssh


def registry_egress(settings: PipelineSettings) -> EgressPolicy:
    """The install fetch's egress: ``allowed_registry_hosts`` on 443, and each registry URL of
    ``install_env`` (a mirror) on its own port."""
    hosts, ports = list(settings.allowed_registry_hosts), {443}
    for key in REGISTRY_ENV:
        url = urlsplit(settings.install_env.get(key, ""))
        if url.hostname:
            hosts.append(url.hostname)
            ports.add(url.port or (80 if url.scheme == "http" else 443))
    return EgressPolicy(hosts=tuple(dict.fromkeys(hosts)), ports=frozenset(ports), setting="allowed_registry_hosts",
                        upstream=settings.egress_upstream_proxy)


def git_egress(settings: PipelineSettings, extra_ports: Iterable[int] = ()) -> EgressPolicy:
    """Checkout's egress: the hosts of ``allowed_git_hosts`` on git's ports (plain http only where
    ``allow_http_git_urls``), and ``extra_ports`` (a git URL's own port)."""
    ports = set(GIT_PORTS) | ({80} if settings.allow_http_git_urls else set()) | set(extra_ports)
    return EgressPolicy(hosts=settings.allowed_git_hosts, ports=frozenset(ports), setting="allowed_git_hosts",
                        upstream=settings.egress_upstream_proxy)
