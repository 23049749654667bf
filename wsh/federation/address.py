"""Backend addresses: the URL a hub dials to reach a backend, parsed and checked once.

Every path that brings in an address (config file, AddServer, reload) goes
through :func:`parse_backend_address`, so the rest of the code only ever sees a
:class:`BackendAddress` whose parts are known to be well formed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from wsh.errors import Kind, WshError
from wsh.names import is_valid_hostname
from wsh.text import printable, quote

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PORT = re.compile(r"[0-9]{1,5}")
MAX_ADDRESS_LEN = 2048
# RFC 3986 "unreserved" characters only: anything fancier in a path prefix
# (percent-escapes, sub-delimiters) has no use here and only widens what an
# address can smuggle into request paths.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
# A final label that is a number makes resolvers read the whole host as an
# IPv4 address in inet_aton() form ("0" is 0.0.0.0, "0x7f.1" is 127.0.0.1),
# which would slip past the checks on IP literals below.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


@dataclass(frozen=True, slots=True)
class BackendAddress:
    """A parsed backend URL; build it with :func:`parse_backend_address`.

    ``host`` is lower-case, without brackets for IPv6 (in compressed form);
    ``path_prefix`` is ``""`` or ``"/seg[/seg...]"`` without a trailing slash.
    """

    scheme: str
    host: str
    port: int
    path_prefix: str = ""

    @property
    def tls(self) -> bool:
        """Whether the backend is reached over TLS (``https``)."""
        return self.scheme == "https"

    @property
    def grpc_target(self) -> str:
        """``host:port`` (IPv6 bracketed), the target for a ``grpc.aio`` channel."""
        return f"{self._bracketed_host}:{self.port}"

    @property
    def url(self) -> str:
        """The canonical URL: the scheme's default port is left out, so two
        spellings of one backend (``http://h`` and ``http://h:80/``) compare equal."""
        port = "" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{self._bracketed_host}{port}{self.path_prefix}"

    @property
    def _bracketed_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return self.url


class _Refused(Exception):
    """One problem with an address, turned into a WshError naming the address."""


def parse_backend_address(text: str) -> BackendAddress:
    """Parse ``scheme://host[:port][/path/prefix]`` into a :class:`BackendAddress`.

    Raises ``WshError(INVALID_ARGUMENT, "ADDRESS_INVALID")`` naming the address
    and the problem when it is not an ``http``/``https`` URL with a valid host
    and port, or carries user info, a query or a fragment.
    """
    stripped = text.strip()
    try:
        return _parse(stripped)
    except _Refused as exc:
        problem = str(exc)
        end = "" if problem.endswith("?") else "."
        raise WshError(
            Kind.INVALID_ARGUMENT,
            "ADDRESS_INVALID",
            f"Invalid backend address {quote(stripped)}: {problem}{end}",
            {"address": printable(stripped)},
        ) from None


def _parse(text: str) -> BackendAddress:
    if not text:
        raise _Refused("it is empty")
    if len(text) > MAX_ADDRESS_LEN:
        raise _Refused(f"it is longer than {MAX_ADDRESS_LEN} characters")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _Refused(f"it has no scheme; did you mean {quote('http://' + text)}?")
    if scheme not in _DEFAULT_PORTS:
        if scheme.lower() in _DEFAULT_PORTS:
            fixed = scheme.lower() + "://" + rest
            raise _Refused(f"the scheme must be lower-case; did you mean {quote(fixed)}?")
        raise _Refused(f"the scheme must be http or https, not {quote(scheme)}")
    if "?" in rest or "#" in rest:
        raise _Refused("query strings and fragments are not allowed")
    authority, slash, path = rest.partition("/")
    if not authority:
        raise _Refused("it has no host")
    if "@" in authority:
        raise _Refused("user info ('user@') is not allowed; give a token instead")
    host, port_text = _split_authority(authority)
    return BackendAddress(
        scheme=scheme,
        host=host,
        port=_port(port_text, _DEFAULT_PORTS[scheme]),
        path_prefix=_path_prefix(path) if slash else "",
    )


def _split_authority(authority: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        literal, bracket, after = authority[1:].partition("]")
        if not bracket:
            raise _Refused("the '[' of the IPv6 address is never closed")
        if after and not after.startswith(":"):
            raise _Refused(f"unexpected {quote(after)} after the IPv6 address")
        return _ipv6_host(literal), after[1:] if after else None
    if authority.count(":") > 1:
        raise _Refused("an IPv6 address must be in brackets, like 'http://[::1]:7600'")
    host, colon, port_text = authority.partition(":")
    return _named_host(host), port_text if colon else None


def _ipv6_host(literal: str) -> str:
    try:
        ip = ipaddress.IPv6Address(literal)
    except ValueError:
        raise _Refused(f"{quote(literal)} is not an IPv6 address") from None
    if ip.scope_id is not None:
        raise _Refused("IPv6 zone IDs ('%eth0') are not supported")
    if ip.is_unspecified or (ip.ipv4_mapped is not None and ip.ipv4_mapped.is_unspecified):
        raise _Refused(f"the unspecified address {ip} is not allowed; name a reachable host")
    return str(ip)


def _named_host(host: str) -> str:
    if not host:
        raise _Refused("it has no host")
    # Checked before lower-casing: str.lower() maps some non-ASCII letters
    # (the Kelvin sign) to ASCII ones, which would silently change the host.
    if not host.isascii():
        raise _Refused(f"{quote(host)} is not ASCII; write an international name in 'xn--' form")
    host = host.lower()
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            raise _Refused(
                f"{quote(host)} is neither a host name nor a dotted IPv4 address"
            ) from None
        if ip.is_unspecified:
            raise _Refused(f"the unspecified address {ip} is not allowed; name a reachable host")
        return str(ip)
    if not is_valid_hostname(host):
        raise _Refused(
            f"{quote(host)} is not a valid host name (RFC 1123: labels of letters, "
            "digits and '-') or IP address"
        )
    return host


def _port(text: str | None, default: int) -> int:
    # RFC 3986 allows an empty port ("http://h:/") and means the default by it.
    if not text:
        return default
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise _Refused(f"the port {quote(text)} is not a number from 1 to 65535")
    return int(text)


def _path_prefix(path: str) -> str:
    if not path:
        return ""
    segments = path.removesuffix("/").split("/")
    for segment in segments:
        if not _PATH_SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise _Refused(
                f"the path segment {quote(segment)} is not allowed; use letters, digits "
                "and '-', '.', '_', '~' (no empty, '.' or '..' segments)"
            )
    return "/" + "/".join(segments)
