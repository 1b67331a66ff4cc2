"""The two URL parameters, ``git-url`` and ``r2-endpoint-url``: what shapes are accepted.

Both reach tools (git, boto3) as arguments, never a shell; these checks refuse what a tool could
read as an option (a leading ``-``), remote helpers, credentials in the URL and shell characters.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError

_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>[^/\\][^\\]*|/.+)$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^[0-9a-fA-F:]+$")
_URL_UNSAFE = re.compile(r"[\s$`;|&<>(){}'\"\\*?\[\]!]")


def required(name: str, value: str) -> str:
    if not value:
        raise InvalidParameterError(name, "a non-empty value (this parameter is required)")
    return value


SAFE_GIT_SCHEMES = ("https", "ssh", "git")  # file and http only where a setting allows them
_SCHEME_SETTINGS = {"file": "allow_file_git_urls", "http": "allow_http_git_urls"}


def check_git_url(value: str, schemes: Collection[str] = SAFE_GIT_SCHEMES) -> str:
    """``value`` if it is a git URL of one of ``schemes`` (scp-like ``user@host:path`` is ssh)."""
    allow_file = "file" in schemes
    name = "git-url"
    required(name, value)
    if value.startswith("-"):
        raise InvalidParameterError(name, "a URL that does not start with '-'", value)
    if "::" in value:
        raise InvalidParameterError(name, "a https, ssh or git URL (git remote helpers like ext:: are refused)", value)
    if _URL_UNSAFE.search(value):
        raise InvalidParameterError(name, "a URL without spaces, quotes or shell characters ($ ` ; | & < > ( ) { } * ? [ ] !)", value)
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            setting = _SCHEME_SETTINGS.get(parts.scheme)
            hint = f" ({parts.scheme}:// needs the {setting} setting)" if setting else ""
            raise InvalidParameterError(name, f"a URL with scheme {', '.join(sorted(schemes))}{hint}", value)
        if parts.password is not None:
            raise InvalidParameterError(
                name, "a URL without a password or token; put credentials in an Airflow connection", show_value=False
            )
        if parts.scheme != "file" and (not parts.hostname or not _HOSTNAME.match(parts.hostname)):
            raise InvalidParameterError(name, "a URL with a host name or address (not starting with '-')", value)
        if (parts.username or "").startswith("-"):
            raise InvalidParameterError(name, "a URL whose user name does not start with '-'", value)
        if parts.query or parts.fragment:
            raise InvalidParameterError(name, "a URL without query or fragment", value)
        return value
    if allow_file and value.startswith("/"):
        return value
    if _SCP_LIKE.match(value):
        return value
    raise InvalidParameterError(name, "a https://, ssh://, git:// URL or scp-like user@host:path", value)


def check_endpoint_url(value: str) -> str:
    name = "r2-endpoint-url"
    required(name, value)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or not _HOSTNAME.match(parts.hostname):
        raise InvalidParameterError(name, "an http(s) URL with a host, like https://<account>.r2.cloudflarestorage.com", value)
    if parts.username or parts.password:
        raise InvalidParameterError(name, "a URL without credentials; they belong in the R2 connection", show_value=False)
    if parts.query or parts.fragment or parts.path.strip("/"):
        raise InvalidParameterError(name, "the endpoint only, without path, query or fragment", value)
    try:
        _ = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        raise InvalidParameterError(name, "a valid port number", value) from None
    return value.rstrip("/")


def git_host(url: str) -> str | None:
    """The host a validated ``git-url`` names; None for a local repository (``file://``, a path)."""
    if "://" in url:
        parts = urlsplit(url)
        return None if parts.scheme == "file" else parts.hostname
    match = _SCP_LIKE.match(url)
    return match.group("host") if match else None
