"""ip_access: parsing the lists, checking IPs, and checking resolved addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import pytest

from wsh.errors import Kind, WshError
from wsh.federation.address import parse_backend_address
from wsh.federation.ip_access import IpAccess

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


def denied(check: Callable[[], object]) -> WshError:
    with pytest.raises(WshError) as info:
        check()
    assert info.value.kind is Kind.PERMISSION_DENIED
    assert info.value.reason == "IP_NOT_ALLOWED"
    return info.value


def fake_resolver(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]
) -> list[tuple[str, int]]:
    """Make the running loop's getaddrinfo answer from ``answers``; return the
    log of lookups."""
    lookups: list[tuple[str, int]] = []

    async def getaddrinfo(host: str, port: int, **_kwargs: object) -> list[AddrInfo]:
        lookups.append((host, port))
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        result: list[AddrInfo] = []
        for ip in answers[host]:
            if ":" in ip:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
        return result

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return lookups


# --- from_lists ---------------------------------------------------------------


def test_from_lists_parses_cidrs_and_allows_host_bits() -> None:
    access = IpAccess.from_lists(["10.0.0.1/8", " 192.168.0.0/16 "], ["fd00::1/8"])
    assert access.allowlist == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.0.0/16"),
    )
    assert access.blocklist == (ipaddress.ip_network("fd00::/8"),)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("10.0.0.1", "prefix length"),
        ("::1", "prefix length"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("10.0.0/8", "10.0.0/8"),
        ("not-an-ip/8", "not-an-ip/8"),
        ("", "prefix length"),
    ],
)
def test_invalid_entry_is_named(entry: str, problem: str) -> None:
    for list_name, lists in (("allowlist", ([entry], [])), ("blocklist", ([], [entry]))):
        with pytest.raises(WshError) as info:
            IpAccess.from_lists(*lists)
        assert info.value.kind is Kind.INVALID_ARGUMENT
        assert info.value.reason == "CONFIG_INVALID"
        assert f"ip_access {list_name} entry '{entry}'" in info.value.message
        assert problem in info.value.message


def test_mapped_ipv6_rules_become_ipv4() -> None:
    access = IpAccess.from_lists([], ["::ffff:10.0.0.0/104"])
    assert access.blocklist == (ipaddress.ip_network("10.0.0.0/8"),)
    denied(lambda: access.check_ip("10.9.9.9"))


# --- check_ip -----------------------------------------------------------------


def test_empty_lists_allow_everything() -> None:
    access = IpAccess.from_lists([], [])
    assert access.allows_all
    for ip in ("127.0.0.1", "169.254.169.254", "::1", "8.8.8.8"):
        access.check_ip(ip)


def test_blocklist_denies_and_names_the_rule() -> None:
    access = IpAccess.from_lists([], ["10.0.0.0/8"])
    assert not access.allows_all
    error = denied(lambda: access.check_ip("10.1.2.3"))
    assert error.message == "IP 10.1.2.3 is in blocklist 10.0.0.0/8."
    assert error.metadata == {"ip": "10.1.2.3", "rule": "10.0.0.0/8"}
    access.check_ip("11.0.0.1")


def test_message_names_the_backend() -> None:
    access = IpAccess.from_lists(["192.168.0.0/16"], ["10.0.0.0/8"])
    backend = parse_backend_address("http://x:1")
    error = denied(lambda: access.check_ip("10.1.2.3", backend=backend))
    assert error.message == "IP 10.1.2.3 of backend http://x:1 is in blocklist 10.0.0.0/8."
    error = denied(lambda: access.check_ip("8.8.8.8", backend=backend))
    assert error.message == "IP 8.8.8.8 of backend http://x:1 is not in the allowlist."


def test_allowlist_allows_only_members() -> None:
    access = IpAccess.from_lists(["10.0.0.0/8", "fd00::/8"], [])
    access.check_ip("10.255.0.1")
    access.check_ip("fd12::1")
    access.check_ip(ipaddress.ip_address("10.0.0.1"))
    denied(lambda: access.check_ip("11.0.0.1"))
    denied(lambda: access.check_ip("127.0.0.1"))
    denied(lambda: access.check_ip("fe80::1"))


def test_blocklist_wins_over_allowlist() -> None:
    access = IpAccess.from_lists(["10.0.0.0/8"], ["10.1.0.0/16"])
    access.check_ip("10.2.0.1")
    error = denied(lambda: access.check_ip("10.1.0.1"))
    assert "blocklist 10.1.0.0/16" in error.message


def test_ipv4_mapped_ipv6_is_checked_as_ipv4() -> None:
    blocked = IpAccess.from_lists([], ["10.0.0.0/8"])
    error = denied(lambda: blocked.check_ip("::ffff:10.1.2.3"))
    assert error.message.startswith("IP 10.1.2.3 ")
    allowed = IpAccess.from_lists(["10.0.0.0/8"], [])
    allowed.check_ip("::ffff:10.1.2.3")
    allowed.check_ip(ipaddress.ip_address("::ffff:10.1.2.3"))


def test_ipv4_rules_do_not_match_ipv6() -> None:
    access = IpAccess.from_lists([], ["0.0.0.0/0"])
    access.check_ip("::1")
    denied(lambda: access.check_ip("1.2.3.4"))


def test_not_an_ip_is_denied_with_escaped_text() -> None:
    access = IpAccess.from_lists(["10.0.0.0/8"], [])
    error = denied(lambda: access.check_ip("10.0.0.1\x1b"))
    assert "\x1b" not in error.message
    assert "not an IP address" in error.message


# --- check_address --------------------------------------------------------------


async def test_empty_lists_do_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = fake_resolver(monkeypatch, {})
    access = IpAccess.from_lists([], [])
    assert await access.check_address(parse_backend_address("http://anything.invalid:1")) == []
    assert lookups == []


async def test_literal_ip_address() -> None:
    access = IpAccess.from_lists(["10.0.0.0/8"], [])
    address = parse_backend_address("http://10.0.0.5:7600")
    assert await access.check_address(address) == ["10.0.0.5"]
    with pytest.raises(WshError) as info:
        await access.check_address(parse_backend_address("http://192.168.0.5:7600"))
    assert info.value.reason == "IP_NOT_ALLOWED"
    assert "of backend http://192.168.0.5:7600" in info.value.message


async def test_literal_ipv6_address() -> None:
    access = IpAccess.from_lists([], ["::1/128"])
    with pytest.raises(WshError) as info:
        await access.check_address(parse_backend_address("http://[::1]:7600"))
    assert info.value.message == "IP ::1 of backend http://[::1]:7600 is in blocklist ::1/128."


async def test_localhost_resolves_to_loopback() -> None:
    # Real resolver: localhost resolves to loopback without any network.
    allow_loopback = IpAccess.from_lists(["127.0.0.0/8", "::1/128"], [])
    ips = await allow_loopback.check_address(parse_backend_address("http://localhost:7600"))
    assert ips
    assert all(ipaddress.ip_address(ip).is_loopback for ip in ips)

    block_loopback = IpAccess.from_lists([], ["127.0.0.0/8", "::1/128"])
    with pytest.raises(WshError) as info:
        await block_loopback.check_address(parse_backend_address("http://localhost:7600"))
    assert info.value.reason == "IP_NOT_ALLOWED"
    assert "of backend http://localhost:7600 is in blocklist" in info.value.message


async def test_every_resolved_ip_must_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = fake_resolver(
        monkeypatch, {"multi": ["10.0.0.1", "169.254.169.254"], "good": ["10.0.0.1", "fd00::1"]}
    )
    access = IpAccess.from_lists([], ["169.254.0.0/16"])
    with pytest.raises(WshError) as info:
        await access.check_address(parse_backend_address("http://multi:8080"))
    assert "IP 169.254.169.254 of backend http://multi:8080" in info.value.message
    assert await access.check_address(parse_backend_address("https://good")) == [
        "10.0.0.1",
        "fd00::1",
    ]
    assert lookups == [("multi", 8080), ("good", 443)]


async def test_resolved_ips_are_deduplicated_and_mapped_normalised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_resolver(monkeypatch, {"h": ["10.0.0.1", "::ffff:10.0.0.1", "10.0.0.1", "10.0.0.2"]})
    access = IpAccess.from_lists(["10.0.0.0/8"], [])
    assert await access.check_address(parse_backend_address("http://h:1")) == [
        "10.0.0.1",
        "10.0.0.2",
    ]


async def test_unresolvable_host_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(monkeypatch, {"empty": []})
    access = IpAccess.from_lists([], ["169.254.0.0/16"])
    for host in ("nowhere", "empty"):
        with pytest.raises(WshError) as info:
            await access.check_address(parse_backend_address(f"http://{host}:1"))
        assert info.value.kind is Kind.UNAVAILABLE
        assert info.value.reason == "ADDRESS_UNRESOLVABLE"
        assert f"'{host}' of backend http://{host}:1" in info.value.message


async def test_unresolvable_with_the_real_resolver() -> None:
    # .invalid never resolves (RFC 6761).
    access = IpAccess.from_lists(["10.0.0.0/8"], [])
    with pytest.raises(WshError) as info:
        await access.check_address(parse_backend_address("http://wsh-test.invalid:1"))
    assert info.value.reason == "ADDRESS_UNRESOLVABLE"
