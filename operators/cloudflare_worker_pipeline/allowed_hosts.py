"""Which hosts a run may make the worker talk to.

``r2-endpoint-url`` and ``git-url`` come from the catalogue, whose users choose them. Left open,
a run could aim the worker's signed S3 requests (carrying the R2 access key id) at a metadata
service or an internal host, or make a build fetch from one. Each host must match an allowlist
setting, and an address in loopback, private, link-local or otherwise non-public space is refused
unless an address or network entry of that setting covers it (the demo and tests allow 127.0.0.1).

An ``allowed_r2_endpoints`` entry also names its port (``host:9000``, ``[fd00::/8]:9000``,
``127.0.0.1:*``); without one it admits 443 only, so allowing a host does not open its other services.
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


DEFAULT_ENDPOINT_PORT = 443


def split_port(entry: str) -> tuple[str, str]:
    """An endpoint entry's host part and port part (digits, ``*`` or "" for the default): an IPv6
    address or network carries a port only in brackets."""
    if entry.startswith("["):
        inner, _, rest = entry[1:].partition("]")
        return inner, rest.removeprefix(":")
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, ""


def bad_endpoint_entries(entries: Sequence[str]) -> list[str]:
    """The entries whose port is neither absent, ``*`` nor 1-65535 (for the settings' check)."""
    def valid(port: str) -> bool:
        return port in ("", "*") or (port.isdigit() and 0 < int(port) < 65536)
    return [entry for entry in entries if not split_port(entry)[0] or not valid(split_port(entry)[1])]


def check_r2_endpoint(endpoint_url: str, allowed: Sequence[str]) -> None:
    """``r2-endpoint-url``'s host and port against the ``allowed_r2_endpoints`` setting (validation
    and upload): the host as :func:`check_host` does, and the port as the matching entries name it."""
    url = urlsplit(endpoint_url)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    entries = [split_port(entry) for entry in allowed]
    check_host(host, [h for h, _ in entries], parameter="r2-endpoint-url", setting="allowed_r2_endpoints",
               resolve=False)
    admitted = [h for h, ports in entries if ports == "*" or int(ports or DEFAULT_ENDPOINT_PORT) == port]
    try:
        check_host(host, admitted, parameter="r2-endpoint-url", setting="allowed_r2_endpoints", resolve=False)
    except HostNotAllowedError:
        raise HostNotAllowedError(
            f"Invalid parameter 'r2-endpoint-url': port {port} of host {host} is not allowed here (setting "
            f"[cloudflare_worker_pipeline] allowed_r2_endpoints: {', '.join(allowed)}; an entry without a port "
            f"admits {DEFAULT_ENDPOINT_PORT} only)"
        ) from None
    check_host(host, admitted, parameter="r2-endpoint-url", setting="allowed_r2_endpoints")


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
