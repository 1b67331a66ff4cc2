"""The tenant map: which owner a run may act for, and what that owner may write (issue 20).

The catalogue's users choose ``owner-identifier-label-value``, object keys and ConfigMap names, so
without a map any run may claim any owner and write where that owner writes. With the deployment's
setting ``tenants``, ownership is the platform's decision, not the run's: each owner (the label
``key=value``) is granted repositories (``git-url`` patterns), and only the object-key prefixes,
ConfigMap names and buckets it lists. Validation refuses a run that steps outside them, for every
worker of ``additional-workers`` too, before anything is cloned or written.

The setting is JSON written inline, or the path of a YAML or JSON file (say, a mounted ConfigMap),
read when a run is validated, so edits apply to the next run. One owner per entry::

    team=payments:
      repositories: [https://git.example.com/payments/*]   # git-url patterns
      r2-object-key-prefixes: [payments/]
      config-map-names: [payments-*]                       # ConfigMap name patterns
      r2-bucket-names: [workers]                           # optional: any bucket when absent
      callers: [service-catalogue]                         # optional: any caller when absent

In patterns ``*`` matches within one ``/``-separated part, ``**`` across parts, ``?`` one
character: ``https://git.example.com/payments/*`` admits ``.../payments/api.git``, not
``.../payments/../search/api.git`` (dot segments and percent-escapes are refused outright, as a
server might resolve them after the match).

``callers`` names the Airflow users who may trigger builds for the owner (the REST API's caller,
or the person at the trigger form: the run's ``triggering_user_name``). Runs the scheduler starts
(a services file's rebuilds) have no caller and are checked on everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cloudflare_worker_pipeline.get_provider_info import SECTION
from cloudflare_worker_pipeline.parameter_fields import owner_label
from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError
from cloudflare_worker_pipeline.parameter_workers import parameter_name
from cloudflare_worker_pipeline.parameters import PipelineParameters

SETTING = f"[{SECTION}] tenants"
_REQUIRED = ("repositories", "r2-object-key-prefixes", "config-map-names")
_OPTIONAL = ("r2-bucket-names", "callers")


class TenantMapError(ValueError):
    """The deployment's tenant map cannot be read or has a malformed entry."""


@dataclass(frozen=True)
class Tenant:
    """What one owner may build and write."""

    owner: str  # the owner label, key=value
    repositories: tuple[str, ...]
    r2_object_key_prefixes: tuple[str, ...]
    config_map_names: tuple[str, ...]
    r2_bucket_names: tuple[str, ...] = ()  # empty: any bucket the run names
    callers: tuple[str, ...] = ()  # empty: any caller

    def owns_repository(self, git_url: str) -> bool:
        return any(_pattern(p).fullmatch(git_url) for p in self.repositories)


def load_tenants(value: str) -> tuple[Tenant, ...] | None:
    """The tenant map the setting holds (inline JSON, or a file's path); None when it is empty."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except ValueError as error:
            raise TenantMapError(f"{SETTING}: expected a JSON object or a file's path: {error}") from None
        return parse_tenants(document, SETTING)
    path = Path(value)
    try:
        text = path.read_text()
    except OSError as error:
        raise TenantMapError(f"{SETTING}: cannot read {path} ({error.strerror or error}); refusing to build without "
                             "the tenant map") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TenantMapError(f"{SETTING}: {path} is not YAML or JSON: {error}") from None
    return parse_tenants(document, f"{SETTING} ({path})")


def parse_tenants(document: Any, source: str) -> tuple[Tenant, ...]:
    """Check the map's shape; every problem names the owner entry and the field."""
    if not isinstance(document, Mapping) or not document:
        raise TenantMapError(f"{source}: expected a mapping of owners (label key=value) to their grants, with at "
                             "least one owner")
    return tuple(_tenant(owner, grants, source) for owner, grants in document.items())


def _tenant(owner: Any, grants: Any, source: str) -> Tenant:
    key, _, value = str(owner).partition("=")
    try:
        owner_label(key, value)
    except InvalidParameterError:
        raise TenantMapError(f"{source}: {owner!r} is not an owner label key=value, like team=payments") from None
    if not isinstance(grants, Mapping):
        raise TenantMapError(f"{source}: {owner}: expected a mapping of grants ({', '.join(_REQUIRED)})")
    unknown = sorted(set(grants) - {*_REQUIRED, *_OPTIONAL})
    if unknown:
        raise TenantMapError(f"{source}: {owner}: unknown field {unknown[0]!r}; expected {', '.join(_REQUIRED + _OPTIONAL)}")
    lists = {}
    for field in (*_REQUIRED, *_OPTIONAL):
        items = grants.get(field, [])
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise TenantMapError(f"{source}: {owner}: {field}: expected a list of non-empty strings")
        if field in _REQUIRED and not items:
            raise TenantMapError(f"{source}: {owner}: {field}: expected at least one entry")
        lists[field.replace("-", "_")] = tuple(items)
    return Tenant(owner=str(owner), **lists)


def check_grants(parameters: PipelineParameters, tenants: tuple[Tenant, ...], caller: str | None) -> None:
    """Refuse a run that acts for an owner the map does not give its repository, or writes outside
    that owner's grants; ``caller`` is who triggered it (None for the scheduler)."""
    url = parameters.git_url
    if re.search(r"%|(^|/)\.\.?(/|$)", url.split("://", 1)[-1].split(":", 1)[-1]):
        raise InvalidParameterError("git-url", "a URL without '.' or '..' segments or percent-escapes (the tenant "
                                    f"map, {SETTING}, matches its text)", url)
    owners = [t for t in tenants if t.owns_repository(url)]
    if not owners:
        raise InvalidParameterError("git-url", f"a repository the tenant map ({SETTING}) grants to an owner", url)
    tenant = next((t for t in owners if t.owner == parameters.owner), None)
    if tenant is None:
        granted = " or ".join(t.owner for t in owners)
        raise InvalidParameterError("owner-identifier-label-value", f"the owner the tenant map ({SETTING}) grants "
                                    f"this repository to: {granted}", parameters.owner or "no owner label")
    if caller is not None and tenant.callers and caller not in tenant.callers:
        raise InvalidParameterError("owner-identifier-label-value", f"an owner whose builds {caller!r}, who "
                                    f"triggered this run, may trigger ({SETTING} lists {tenant.owner}'s callers)",
                                    tenant.owner)
    if tenant.r2_bucket_names and parameters.r2_bucket_name not in tenant.r2_bucket_names:
        raise InvalidParameterError("r2-bucket-name", f"one of {tenant.owner}'s buckets "
                                    f"({', '.join(tenant.r2_bucket_names)}; {SETTING})", parameters.r2_bucket_name)
    names = [("kustomize-manifests-config-map-name", parameters.kustomize_manifests_config_map_name)]
    for worker in parameters.workers:
        key, head = worker["r2_object_key"], worker["r2_object_key"].split("{", 1)[0]  # a placeholder's value is unknown
        if not any(head.startswith(prefix) for prefix in tenant.r2_object_key_prefixes):
            raise InvalidParameterError(parameter_name(worker, "r2-object-key"), f"a key starting with one of "
                                        f"{tenant.owner}'s prefixes ({', '.join(tenant.r2_object_key_prefixes)}; "
                                        f"{SETTING})", key)
        names.append((parameter_name(worker, "worker-script-artifact-config-map-name"),
                      worker["worker_script_artifact_config_map_name"]))
    for parameter, name in names:
        if not any(_pattern(p).fullmatch(name) for p in tenant.config_map_names):
            raise InvalidParameterError(parameter, f"a ConfigMap name {tenant.owner} may write "
                                        f"({', '.join(tenant.config_map_names)}; {SETTING})", name)


@lru_cache(maxsize=256)
def _pattern(glob: str) -> re.Pattern[str]:
    """``*`` within a ``/``-separated part, ``**`` across parts, ``?`` one character; the rest literal."""
    parts = re.split(r"(\*\*|\*|\?)", glob)
    wildcards = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))
