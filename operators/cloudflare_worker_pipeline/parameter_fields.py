"""The checks of single parameter values: each returns the value as the pipeline uses it, or raises
:class:`InvalidParameterError` naming the parameter (``name``) and what was expected. Shared by the
top-level parameters and the entries of ``additional-workers``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from cloudflare_worker_pipeline.parameter_specs import OBJECT_KEY_CHARACTERS, InvalidParameterError
from cloudflare_worker_pipeline.parameter_urls import required

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._@+=-]+$")
_REF = re.compile(r"^[A-Za-z0-9._/+=@-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# S3's "safe characters" for object keys, plus "/" between segments.
_OBJECT_KEY = re.compile(rf"^[{OBJECT_KEY_CHARACTERS}]+$")
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "planton-cloud")
SHORT_SHA_LENGTH = 12


def string(name: str, value: object, max_length: int = 2048) -> str:
    if value is None:
        raise InvalidParameterError(name, "a value (this parameter is required)")
    if not isinstance(value, str):
        raise InvalidParameterError(name, "a string", value)
    if _CONTROL.search(value):
        raise InvalidParameterError(name, "no control characters (newlines, tabs, NUL)", value)
    if value != value.strip():
        raise InvalidParameterError(name, "no leading or trailing whitespace", value)
    if len(value) > max_length:
        raise InvalidParameterError(name, f"at most {max_length} characters", f"{len(value)} characters")
    return value


def relative_path(name: str, value: str, *, allow_root: bool = True) -> str:
    if value in ("", "."):
        if allow_root:
            return "."
        raise InvalidParameterError(name, "a directory below the repository root", value)
    if value.startswith("/") or value.startswith("-"):
        raise InvalidParameterError(name, "a relative path that does not start with '/' or '-'", value)
    parts = [part for part in PurePosixPath(value).parts if part != "."]
    for part in parts:
        if part == "..":
            raise InvalidParameterError(name, "a path that stays inside the repository (no '..')", value)
        if not _PATH_SEGMENT.match(part):
            raise InvalidParameterError(name, "a path of letters, digits and . _ - @ + = only", value)
    return "/".join(parts) or "."


def covered_by_sparse(path: str, sparse: tuple[str, ...]) -> bool:
    return path == "." or any(path == d or path.startswith(d + "/") for d in sparse)


def ref(name: str, value: str, *, required: bool) -> str:
    if not value:
        if required:
            raise InvalidParameterError(name, "a branch, tag or commit SHA")
        return ""
    if (
        not _REF.match(value)
        or value.startswith(("-", "/", "."))
        or value.endswith(("/", ".", ".lock"))
        or ".." in value
        or "//" in value
        or len(value) > 255
    ):
        raise InvalidParameterError(name, "a git branch, tag or commit SHA (letters, digits, . _ / - only)", value)
    return value


def bucket(value: str) -> str:
    name = "r2-bucket-name"
    required(name, value)
    if not _BUCKET.match(value) or ".." in value:
        raise InvalidParameterError(name, "3-63 lowercase letters, digits, '-' or '.', starting and ending alphanumeric", value)
    return value


def object_key_for_commit(template: str, commit: str) -> str:
    """Fill ``{commit_sha}`` and ``{short_sha}`` (its first 12 characters) in an object key."""
    return template.replace("{commit_sha}", commit).replace("{short_sha}", commit[:SHORT_SHA_LENGTH])


def object_key(value: str, name: str = "r2-object-key") -> str:
    required(name, value)
    filled = object_key_for_commit(value, "0" * 40)  # checked as it will be stored
    if "{" in filled or "}" in filled:
        raise InvalidParameterError(name, "no braces other than the placeholders {commit_sha} and {short_sha}", value)
    stored_object_key(filled, value, name)
    return value


def stored_object_key(filled: str, value: str, name: str = "r2-object-key") -> None:
    if filled.startswith("/"):
        raise InvalidParameterError(name, "a key without a leading '/', like my-worker/abc123.js", value)
    if ".." in filled.split("/") or "." in filled.split("/") or "//" in filled:
        raise InvalidParameterError(name, "a key without '.', '..' or empty path segments", value)
    if len(filled.encode()) > 1024:
        raise InvalidParameterError(name, "at most 1024 bytes", f"{len(filled.encode())} bytes")
    if not _OBJECT_KEY.match(filled):
        raise InvalidParameterError(
            name, "S3's safe characters only: letters, digits, / ! - _ . * ' ( ) = + , @ and the placeholders "
            "{commit_sha}, {short_sha}", value)


def dns_subdomain(name: str, value: str) -> str:
    required(name, value)
    if len(value) > 253 or not DNS_SUBDOMAIN.match(value):
        raise InvalidParameterError(
            name, "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', at most 253 characters", value
        )
    if value.startswith("kube-"):  # kube-root-ca.crt, kube-proxy...: the cluster's own
        raise InvalidParameterError(name, "a name not starting with 'kube-', which Kubernetes' own ConfigMaps use", value)
    return value


def positive(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise InvalidParameterError(name, "a positive whole number of bytes", value)
    return int(value)


def choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidParameterError(name, f"one of {', '.join(choices)}", value)
    return value


def flag(name: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise InvalidParameterError(name, "true or false", value)
    return value == "true"


def owner_label(key: str, value: str) -> tuple[str, str] | None:
    if not key and not value:
        return None
    if not key:
        raise InvalidParameterError("owner-identifier-label-key", "a label key, since owner-identifier-label-value is set")
    if not value:
        raise InvalidParameterError("owner-identifier-label-value", "a label value, since owner-identifier-label-key is set")
    prefix, _, label_name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))) or len(label_name) > 63 or not _LABEL_NAME.match(label_name):
        raise InvalidParameterError(
            "owner-identifier-label-key", "a Kubernetes label key: optional DNS prefix and '/', then a name of at most 63 characters", key
        )
    if key == MANAGED_BY_LABEL[0]:
        raise InvalidParameterError("owner-identifier-label-key", f"a key other than {MANAGED_BY_LABEL[0]}, which the pipeline sets", key)
    if len(value) > 63 or not _LABEL_NAME.match(value):
        raise InvalidParameterError(
            "owner-identifier-label-value", "a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends", value
        )
    return key, value
