"""Host allowlists: a run may only make the worker talk to hosts the deployment allows."""

from __future__ import annotations

import pytest
from cloudflare_worker_pipeline.allowed_hosts import (
    HostNotAllowedError,
    bad_endpoint_entries,
    check_host,
    check_r2_endpoint,
)
from cloudflare_worker_pipeline.get_provider_info import DEFAULTS

DEFAULT_ALLOWED_R2_ENDPOINTS = tuple(DEFAULTS["allowed_r2_endpoints"].split(","))
DEFAULT_ALLOWED_GIT_HOSTS = tuple(DEFAULTS["allowed_git_hosts"].split(","))


def refused(host: str, entries: tuple[str, ...], **kw: bool) -> str:
    with pytest.raises(HostNotAllowedError) as error:
        check_host(host, entries, parameter="r2-endpoint-url", setting="allowed_r2_endpoints", **kw)
    assert "Invalid parameter 'r2-endpoint-url'" in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("host", ["074755a78d8e8f77c119a90a125e8a06.r2.cloudflarestorage.com",
                                  "acct.eu.r2.cloudflarestorage.com", "ACCT.R2.cloudflarestorage.com"])
def test_r2_hosts_match_the_default_endpoint_allowlist(host: str) -> None:
    check_host(host, DEFAULT_ALLOWED_R2_ENDPOINTS, parameter="r2-endpoint-url", setting="allowed_r2_endpoints",
               resolve=False)


@pytest.mark.parametrize("host", ["169.254.169.254", "metadata.google.internal", "127.0.0.1", "localhost",
                                  "2130706433", "0x7f000001", "r2.cloudflarestorage.com.evil.example", "10.0.0.5"])
def test_other_hosts_are_not_r2_endpoints_by_default(host: str) -> None:
    assert "is not allowed here" in refused(host, DEFAULT_ALLOWED_R2_ENDPOINTS, resolve=False)


@pytest.mark.parametrize("host,address", [("169.254.169.254", "169.254.169.254"), ("127.0.0.1", "127.0.0.1"),
                                          ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
                                          ("localhost", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"), ("[::1]", "::1")])
def test_a_host_pattern_admitting_anything_still_refuses_non_public_addresses(host: str, address: str) -> None:
    message = refused(host, DEFAULT_ALLOWED_GIT_HOSTS)
    assert f"resolves to {address}" in message or f"host {address}" in message


def test_an_address_entry_allows_exactly_that_non_public_address() -> None:
    entries = ("*", "127.0.0.1")
    check_host("127.0.0.1", entries, parameter="git-url", setting="allowed_git_hosts")
    check_host("127.0.0.1", ("127.0.0.1",), parameter="git-url", setting="allowed_git_hosts")
    refused("10.0.0.1", entries)
    assert "is not allowed here" in refused("2130706433", ("127.0.0.1",))


def test_a_network_entry_allows_its_addresses() -> None:
    check_host("10.20.30.40", ("10.0.0.0/8",), parameter="git-url", setting="allowed_git_hosts")
    refused("192.168.1.1", ("10.0.0.0/8",))


def test_an_unresolvable_host_is_refused_naming_it() -> None:
    assert "does not resolve" in refused("no-such-host.invalid", ("*",))


def endpoint_refused(url: str, entries: tuple[str, ...]) -> str:
    with pytest.raises(HostNotAllowedError) as error:
        check_r2_endpoint(url, entries)
    return str(error.value)


def test_an_endpoint_entry_without_a_port_admits_443_only() -> None:
    check_r2_endpoint("https://198.51.100.7", ("198.51.100.7",))  # a literal address: nothing to resolve here
    check_r2_endpoint("https://198.51.100.7:443", ("198.51.100.0/24",))
    assert "port 8443" in endpoint_refused("https://198.51.100.7:8443", ("198.51.100.7",))
    message = endpoint_refused("https://acct.r2.cloudflarestorage.com:8443", DEFAULT_ALLOWED_R2_ENDPOINTS)
    assert "port 8443 of host acct.r2.cloudflarestorage.com is not allowed here" in message, message
    assert "admits 443 only" in message
    assert "port 80 " in endpoint_refused("http://127.0.0.1", ("127.0.0.1",))


def test_an_allowed_address_does_not_open_its_other_ports() -> None:
    check_r2_endpoint("http://127.0.0.1:8333", ("127.0.0.1:8333",))
    assert "port 5432 of host 127.0.0.1" in endpoint_refused("http://127.0.0.1:5432", ("127.0.0.1:8333",))
    check_r2_endpoint("http://127.0.0.1:5432", ("127.0.0.1:*",))  # a deliberate wildcard
    check_r2_endpoint("http://10.1.2.3:9000", ("10.0.0.0/8:9000",))
    check_r2_endpoint("http://[fd00::5]:9000", ("[fd00::/8]:9000",))
    assert "port 9001" in endpoint_refused("http://[fd00::5]:9001", ("[fd00::/8]:9000",))


def test_another_host_is_refused_as_a_host_whatever_its_port() -> None:
    assert "host 10.0.0.5 is not allowed here" in endpoint_refused("http://10.0.0.5:8333", ("127.0.0.1:8333",))


@pytest.mark.parametrize("entries,bad", [(("host:port",), ["host:port"]), (("h:70000",), ["h:70000"]),
                                         ((":443",), [":443"]), (("h:443", "fd00::/8", "[::1]:*"), [])])
def test_endpoint_entries_with_a_malformed_port_are_found(entries: tuple[str, ...], bad: list[str]) -> None:
    assert bad_endpoint_entries(entries) == bad
