"""Server addresses, TLS credentials and path prefixes: shared by both clients, no I/O.

Addresses are ``host:port``, ``http://host:port`` (plaintext) or
``https://host:port`` (TLS), optionally followed by a path prefix for servers
behind a reverse proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import grpc.aio

from wsh.defaults import DEFAULT_PORT, MAX_MESSAGE_BYTES

_SCHEME_PORTS = {"": DEFAULT_PORT, "http": 80, "https": 443}

# Screens and scrollback pages (up to 10,000 styled lines) can exceed gRPC's
# 4 MiB default receive limit; a server sends no more than this.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]


@dataclass(frozen=True, slots=True)
class Endpoint:
    target: str  # host:port for grpc, IPv6 bracketed
    tls: bool | None  # None: the address did not say (bare host:port)
    prefix: str  # "" or "/seg..." prepended to every method path


def parse_addr(addr: str) -> Endpoint:
    if addr.startswith("unix:"):
        return Endpoint(addr, None, "")  # a local socket, passed to gRPC as is
    scheme, sep, rest = addr.partition("://")
    if not sep:
        scheme, rest = "", addr
    scheme = scheme.lower()
    if scheme not in _SCHEME_PORTS:
        raise ValueError(f"unsupported scheme in address {addr!r}: use http://, https:// or none")
    parts = urlsplit("//" + rest)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid port in address {addr!r}") from exc
    if not parts.hostname or parts.username or parts.query or parts.fragment:
        raise ValueError(f"invalid address {addr!r}: expected [http[s]://]host[:port][/prefix]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None:
        port = _SCHEME_PORTS[scheme]
    tls = {"": None, "http": False, "https": True}[scheme]
    return Endpoint(f"{host}:{port}", tls, parts.path.rstrip("/"))


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def credentials(
    endpoint: Endpoint,
    tls: bool,
    ca_file: str | None,
    client_cert: str | None,
    client_key: str | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials for the options given, or ``None`` for plaintext."""
    if bool(client_cert) != bool(client_key):
        raise ValueError("client_cert and client_key must be given together")
    wants_tls = tls or bool(ca_file or client_cert)
    if endpoint.tls is False and wants_tls:
        raise ValueError("an http:// address is plaintext; use https:// for TLS")
    if not (endpoint.tls or wants_tls):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(client_key),
        certificate_chain=_read(client_cert),
    )
