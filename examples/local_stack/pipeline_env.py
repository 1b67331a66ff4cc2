"""The settings and connections a local run of the pipeline needs: what `make demo`, `make airflow`
and their tests share. Everything listens on 127.0.0.1, which the production defaults refuse."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

SETTING = "AIRFLOW__CLOUDFLARE_WORKER_PIPELINE__"
DAG_ID = "build_and_upload_cloudflare_worker"
BUCKET = "cloudflare-worker-scripts"


def registry_hosts(registry: str) -> str:
    """``allowed_registry_hosts`` for this machine: the default's hosts and the registry's, plus the
    registry's addresses where they are not public (a mirror, or a network that intercepts it, as on
    the machines this project is tested on), which the egress proxy otherwise refuses."""
    from cloudflare_worker_pipeline.get_provider_info import DEFAULTS

    host = urlsplit(registry).hostname or "registry.npmjs.org"
    entries = [*DEFAULTS["allowed_registry_hosts"].split(","), host]
    for name in dict.fromkeys(entries):
        try:
            infos = socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
        except OSError:
            continue
        entries += [str(info[4][0]) for info in infos if not ipaddress.ip_address(str(info[4][0])).is_global]
    return ",".join(dict.fromkeys(entries))


SIGNING_KEY = "provenance-signing-key.pem"  # under a local stack's root, mode 0600
PUBLIC_KEY = "provenance-signing-key.pub.pem"  # beside it: what `python -m cloudflare_worker_pipeline.verify` takes


def signing_connection(root: Path) -> str:
    """The provenance signing connection (``AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT``) of a local
    stack: an ed25519 key made once under ``root``, its public key beside it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = root / SIGNING_KEY
    if not private.exists():
        root.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        private.touch(mode=0o600)
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        (root / PUBLIC_KEY).write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return json.dumps({"conn_type": "generic", "password": private.read_text()})


def pipeline_env(root: Path, access_key: str, secret_key: str) -> dict[str, str]:
    """Environment for Airflow components running the pipeline against the local stack under ``root``."""
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org")
    return {
        SETTING + "WORKSPACE_ROOT": str(root / "workspaces"),
        SETTING + "CONFIGMAP_DESTINATION": "files",  # no cluster on a laptop
        SETTING + "MANIFEST_DIR": str(root / "configmaps"),
        SETTING + "ALLOWED_R2_ENDPOINTS": "127.0.0.1:*",
        SETTING + "ALLOWED_GIT_HOSTS": "*,127.0.0.1",
        SETTING + "ALLOWED_REGISTRY_HOSTS": os.environ.get(SETTING + "ALLOWED_REGISTRY_HOSTS") or registry_hosts(registry),
        # Some registry mirrors strip corepack's signatures; see the README's "Install environment".
        SETTING + "INSTALL_ENV": os.environ.get(SETTING + "INSTALL_ENV") or json.dumps({
            "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0", "COREPACK_INTEGRITY_KEYS": "0", "COREPACK_NPM_REGISTRY": registry}),
        "AIRFLOW_CONN_R2_DEFAULT": json.dumps({"conn_type": "aws", "login": access_key, "password": secret_key}),
        "AIRFLOW_CONN_PROVENANCE_SIGNING_DEFAULT": signing_connection(root),
    }


def example_conf(git_url: str, endpoint_url: str) -> dict[str, str]:
    """The DAG-run conf that builds examples/hello-worker into the local S3 server."""
    return {
        "git-url": git_url,
        "git-revision": "main",
        "r2-bucket-name": BUCKET,
        "r2-endpoint-url": endpoint_url,
        "r2-object-key": "hello-worker/{commit_sha}.js",  # filled with the built commit
        "worker-script-artifact-config-map-name": "hello-worker-artifact-metadata",
        "kustomize-manifests-config-map-name": "hello-worker-manifests",
        "owner-identifier-label-key": "planton.cloud/service-id",
        "owner-identifier-label-value": "svc-hello-worker",
    }
