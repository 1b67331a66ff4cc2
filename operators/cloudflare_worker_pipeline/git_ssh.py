"""SSH git URLs (``ssh://`` and scp-like ``git@host:org/repo.git``): a deploy key and known host keys.

The key comes from the git connection (``git_conn_id``, extra ``private_key``, as Airflow's SSH
connections hold it) in the local mode, or from the Secret ``git_credentials_secret`` (key
``ssh-privatekey``, as a ``kubernetes.io/ssh-auth`` Secret holds it) in a pod. It reaches only the
checkout stage, as an environment value: ``checkout.sh`` writes it to a file in the stage's own
``/tmp`` (the sandbox's tmpfs, the pod's emptyDir), points git's ssh at it and removes it when
the stage ends. No repository code runs in checkout, and no later stage sees the key.

Host keys are always checked (``StrictHostKeyChecking=yes``): the setting ``git_known_hosts`` (a
file) and the connection's extra ``known_hosts`` list them, and an SSH URL with neither is refused.
"""

from __future__ import annotations

from typing import Any

from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError
from cloudflare_worker_pipeline.settings import PipelineSettings, SettingsError


def is_ssh_url(url: str) -> bool:
    """Whether git reaches ``url`` (a validated ``git-url``) over SSH."""
    return url.startswith("ssh://") or ("://" not in url and not url.startswith("/"))


def deploy_key(connection: Any | None) -> str:
    """The connection's SSH private key (extra ``private_key``), or ""."""
    extra = connection.extra_dejson if connection is not None else {}
    return str(extra.get("private_key") or "").strip()


def known_hosts(settings: PipelineSettings, connection: Any | None) -> str:
    """The host keys SSH may accept: the setting's file, then the connection's extra ``known_hosts``."""
    lines = []
    if settings.git_known_hosts is not None:
        try:
            lines.append(settings.git_known_hosts.read_text())
        except OSError as error:
            raise SettingsError(f"[cloudflare_worker_pipeline] git_known_hosts: cannot read {settings.git_known_hosts} "
                                f"({error.strerror or error})") from None
    extra = connection.extra_dejson if connection is not None else {}
    lines.append(str(extra.get("known_hosts") or ""))
    return "\n".join(line.strip() for line in lines if line.strip())


def check_ssh_access(git_url: str, settings: PipelineSettings, connection: Any | None, *, kubernetes: bool) -> None:
    """Refuse an SSH ``git-url`` that could only fail at checkout: no known host key, or (locally)
    no deploy key. In a pod the key is the Secret's, which only the pod can read."""
    if not is_ssh_url(git_url):
        return
    if not known_hosts(settings, None if kubernetes else connection):
        raise InvalidParameterError("git-url", "an https URL, or an SSH URL whose server's host key the deployment "
                                    "knows (setting git_known_hosts" + ("" if kubernetes else ", or the git "
                                    "connection's extra known_hosts") + "); host keys are always checked", git_url)
    if not kubernetes and not deploy_key(connection):
        raise InvalidParameterError("git-url", f"an https URL, or an SSH URL with a deploy key in the connection "
                                    f"{settings.git_conn_id} (extra private_key)", git_url)
