"""The resolved configuration: :class:`ServerConfig`, the file's parts, and the errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wsh import defaults
from wsh.config.settings import DEFAULT_MAX_BACKENDS
from wsh.federation.ip_access import IpAccess


class ConfigError(ValueError):
    """A bad value in a flag or an environment variable (``source`` names it)."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class Invalid(ValueError):
    """A value's problem, without the source (added by the caller)."""


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """One ``[[servers]]`` entry; ``token`` is None when the entry has none.

    ``hostname`` is the name this address owns in the cluster (written back
    when the hub first links to it): another backend claiming it is refused.
    """

    address: str
    token: str | None = field(default=None, repr=False)
    hostname: str | None = None


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """``[tls]``: trust roots for ``https://`` backends (None: system roots) and
    an optional client certificate presented to backends. Relative paths are
    resolved against the config file's directory."""

    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True, slots=True)
class FileConfig:
    """The parsed config file. ``path`` is None for a server without one.

    ``settings`` holds the ``[server]`` values given, checked and typed, by
    setting name. Tokens are kept out of ``repr`` so a logged FileConfig
    cannot leak them.
    """

    path: Path | None
    exists: bool = False
    settings: Mapping[str, object] = field(default_factory=dict, repr=False)
    default_token: str | None = field(default=None, repr=False)
    tls: TlsConfig = field(default_factory=TlsConfig)
    servers: tuple[ServerEntry, ...] = ()
    # None when the file has no [ip_access] section, so the server can warn
    # about an unprotected non-loopback hub; an empty section allows all.
    ip_access: IpAccess | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sources:
    """The flags and variables given (checked, typed), kept so that a reload
    resolves the file's settings against them as the start did."""

    flags: Mapping[str, object] = field(default_factory=dict)
    env: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``wsh server`` is configured with, resolved and checked."""

    listen: str = defaults.DEFAULT_ADDR
    # None: no config file (a random port); backends added live in memory.
    config_path: Path | None = None
    # None: the system hostname (see wsh.identity).
    hostname: str | None = None
    token: str | None = field(default=None, repr=False)
    generate_token: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # An empty `server` means this server only, never "where the name is".
    strict_routing: bool = False
    # False: sessions live on backends only, so that every hub sharing them
    # sees the same sessions (docs/HUBS.md).
    local_sessions: bool = True
    max_sessions: int = defaults.MAX_SESSIONS
    exited_retention_s: float = defaults.EXITED_RETENTION_S
    scrollback_lines: int = defaults.SCROLLBACK_LINES
    scrollback_bytes: int = defaults.SCROLLBACK_BYTES
    max_attachers: int = defaults.MAX_ATTACHERS
    attach_buffer_bytes: int = defaults.ATTACH_BUFFER_BYTES
    # None: as many as the open-file limit allows after its reserve (see limits).
    max_connections: int | None = None
    max_backends: int = DEFAULT_MAX_BACKENDS
    log_level: str = "INFO"
    # File-only, re-read by reload_file:
    default_token: str | None = field(default=None, repr=False)
    backend_tls: TlsConfig = field(default_factory=TlsConfig)
    ip_access: IpAccess | None = None
    servers: tuple[ServerEntry, ...] = ()
    # To log once logging is set up (the log level is a setting too).
    warnings: tuple[str, ...] = ()
    sources: Sources = field(default_factory=Sources, repr=False, compare=False)
