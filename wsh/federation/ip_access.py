"""Which IP addresses a hub may dial as backends (config ``[ip_access]``).

The check is on the IPs a backend's host resolves to, not on the name. Run it
each time the hub is about to connect (registration, config load, reload and
reconnect), so a DNS name cannot be pointed somewhere forbidden after it was
accepted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from wsh.errors import Kind, WshError
from wsh.federation.address import BackendAddress
from wsh.text import quote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) reach the IPv4 host, so they are
# checked as the IPv4 address; otherwise "::ffff:10.0.0.1" would dodge a
# blocklist entry "10.0.0.0/8".
_MAPPED_PREFIX_LEN = 96


def _normalize_ip(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _normalize_network(net: IPNetwork) -> IPNetwork:
    if (
        isinstance(net, ipaddress.IPv6Network)
        and net.prefixlen >= _MAPPED_PREFIX_LEN
        and net.network_address.ipv4_mapped is not None
    ):
        return ipaddress.IPv4Network(
            (net.network_address.ipv4_mapped, net.prefixlen - _MAPPED_PREFIX_LEN)
        )
    return net


def _parse_network(entry: str, list_name: str) -> IPNetwork:
    def refuse(problem: str) -> WshError:
        return WshError(
            Kind.INVALID_ARGUMENT,
            "CONFIG_INVALID",
            f"Invalid ip_access {list_name} entry {quote(entry)}: {problem}.",
        )

    text = entry.strip()
    if "/" not in text:
        raise refuse("it needs a prefix length (for a single address: /32 for IPv4, /128 for IPv6)")
    try:
        # strict=False: "10.0.0.1/8" means 10.0.0.0/8, as people often write it.
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    return _normalize_network(net)


@dataclass(frozen=True, slots=True)
class IpAccess:
    """An allowlist and a blocklist of networks; the blocklist wins, and an
    empty allowlist allows every IP that is not blocked."""

    allowlist: tuple[IPNetwork, ...] = ()
    blocklist: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_lists(cls, allowlist: list[str], blocklist: list[str]) -> IpAccess:
        """Build from CIDR strings (prefix length required, host bits allowed).

        Raises ``WshError(INVALID_ARGUMENT, "CONFIG_INVALID")`` naming the first
        invalid entry.
        """
        return cls(
            allowlist=tuple(_parse_network(e, "allowlist") for e in allowlist),
            blocklist=tuple(_parse_network(e, "blocklist") for e in blocklist),
        )

    @property
    def allows_all(self) -> bool:
        """True when no rule is configured, so no IP can be refused."""
        return not self.allowlist and not self.blocklist

    def check_ip(self, ip: str | IPAddress, *, backend: BackendAddress | None = None) -> None:
        """Raise ``WshError(PERMISSION_DENIED, "IP_NOT_ALLOWED")`` unless ``ip``
        may be dialled; ``backend`` only names the backend in the message."""
        if isinstance(ip, str):
            try:
                parsed = ipaddress.ip_address(ip)
            except ValueError:
                raise _denied(quote(ip), backend, "is not an IP address") from None
        else:
            parsed = ip
        address = _normalize_ip(parsed)
        for net in self.blocklist:
            if address in net:
                raise _denied(str(address), backend, f"is in blocklist {net}", rule=str(net))
        if self.allowlist and not any(address in net for net in self.allowlist):
            raise _denied(str(address), backend, "is not in the allowlist")

    async def check_address(self, address: BackendAddress) -> list[str]:
        """Resolve ``address.host`` (every A and AAAA record) and check each IP.

        Returns the resolved IPs, or ``[]`` without resolving when no rule is
        configured. Raises ``WshError(UNAVAILABLE, "ADDRESS_UNRESOLVABLE")``
        when the host does not resolve, and ``IP_NOT_ALLOWED`` (see
        :meth:`check_ip`) when any resolved IP is refused: the hub may connect
        to any of them, so one forbidden IP is enough to refuse.
        """
        if self.allows_all:
            return []
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise _unresolvable(address, exc.strerror or str(exc)) from None
        ips: list[IPAddress] = []
        for family, _type, _proto, _canonname, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = _normalize_ip(ipaddress.ip_address(sockaddr[0]))
            if ip not in ips:
                ips.append(ip)
        if not ips:
            raise _unresolvable(address, "no IPv4 or IPv6 address found")
        for ip in ips:
            self.check_ip(ip, backend=address)
        return [str(ip) for ip in ips]


def _denied(shown: str, backend: BackendAddress | None, problem: str, **metadata: str) -> WshError:
    of_backend = f" of backend {backend}" if backend is not None else ""
    return WshError(
        Kind.PERMISSION_DENIED,
        "IP_NOT_ALLOWED",
        f"IP {shown}{of_backend} {problem}.",
        {"ip": shown, **metadata},
    )


def _unresolvable(address: BackendAddress, problem: str) -> WshError:
    return WshError(
        Kind.UNAVAILABLE,
        "ADDRESS_UNRESOLVABLE",
        f"Cannot resolve the host {quote(address.host)} of backend {address}: {problem}.",
        {"address": address.url},
    )
