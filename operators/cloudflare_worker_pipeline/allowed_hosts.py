"""Which hosts a run may make the worker talk to.

``r2-endpoint-url`` and ``git-url`` come from the catalogue, whose users choose them. Left open,
a run could aim the worker's signed S3 requests (carrying the R2 access key id) at a metadata
service or an internal host, or make a build fetch from one. Each host must match an allowlist
setting, and an address in loopback, private, link-local or otherwise non-public space is refused
unless an address or network entry of that setting covers it (the demo and tests allow 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostNotAllowedError(ValueError):
    """A parameter names a host the deployment's allowlist does not admit."""


def _networks(entries: Sequence[str]) -> list[IPNetwork]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a host pattern
    return networks


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_host(host: str, entries: Sequence[str], *, parameter: str, setting: str,
               resolve: bool = True) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Raise :class:`HostNotAllowedError` unless ``host`` is admitted by ``entries`` (patterns,
    addresses, networks) and, when ``resolve``, every address it resolves to is public or covered
    by an address or network entry. Returns the addresses checked (none without ``resolve``), so
    a caller connects to what was checked rather than resolving again."""
    host = host.lower().rstrip(".")
    networks = _networks(entries)
    literal = _literal_address(host)
    matched = (any(literal in network for network in networks) if literal is not None else False) or any(
        fnmatchcase(host, entry.lower()) for entry in entries if not _is_network(entry))
    allowed = ", ".join(entries) or "nothing"
    if not matched:
        raise HostNotAllowedError(
            f"Invalid parameter '{parameter}': host {host} is not allowed here (setting [cloudflare_worker_pipeline] "
            f"{setting}: {allowed})"
        )
    if not resolve:
        return []
    addresses = _resolve(host, parameter)
    for address in addresses:
        if address.is_global or any(address in network for network in networks):
            continue
        raise HostNotAllowedError(
            f"Invalid parameter '{parameter}': host {host} resolves to {address}, a loopback, private or link-local "
            f"address, which setting [cloudflare_worker_pipeline] {setting} does not allow ({allowed}); add the "
            "address or its network there only if this worker may reach it"
        )
    return addresses


def check_r2_endpoint(endpoint_url: str, allowed: Sequence[str]) -> None:
    """``r2-endpoint-url``'s host against the ``allowed_r2_endpoints`` setting (validation and upload)."""
    check_host(urlsplit(endpoint_url).hostname or "", allowed, parameter="r2-endpoint-url",
               setting="allowed_r2_endpoints")


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def _resolve(host: str, parameter: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    literal = _literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotAllowedError(f"Invalid parameter '{parameter}': host {host} does not resolve ({error})") from None
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return sorted(addresses, key=str)
