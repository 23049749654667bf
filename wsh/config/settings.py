"""The table of server settings: each one's flag, ``WSH_*`` variable, file key and default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wsh import defaults

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Backends one hub will register. Each costs a channel, a reconnect loop and
# a config entry: 494 unreachable ones kept an idle hub at 51% of a core.
DEFAULT_MAX_BACKENDS = 256
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

Type = Literal["text", "hostname", "path", "bool", "int", "float", "level"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One server setting and its spelling in each source (None: not there)."""

    name: str
    flag: str | None
    env: str | None
    key: str | None  # in the file's [server] table
    type: Type
    default: object
    help: str
    minimum: float | None = None
    metavar: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "listen", "--listen", "WSH_LISTEN", None, "text", defaults.DEFAULT_ADDR,
        "HOST:PORT (port 0 picks a free one) or unix:PATH to serve on",
        metavar="ADDRESS",
    ),
    Setting(
        "config_path", "--config", "WSH_CONFIG", None, "path", None,
        "TOML config file; by default one per listen address, "
        "~/.config/wsh/server-HOST-PORT.toml, or server-unix-PATH.toml with / as _ "
        "(with port 0 none, and backends added are kept for that run only)",
        metavar="FILE",
    ),
    Setting(
        "hostname", "--hostname", "WSH_HOSTNAME", "hostname", "hostname", None,
        "this server's name in the cluster; by default the system hostname",
        metavar="NAME",
    ),
    Setting(
        "token", "--token", "WSH_TOKEN", "token", "text", None,
        "bearer token clients must present (16+ characters); on the command line it "
        "is visible to every local user in ps: prefer --token-file or $WSH_TOKEN",
        metavar="TOKEN",
    ),
    Setting(
        "token_file", "--token-file", "WSH_TOKEN_FILE", "token_file", "path", None,
        "read the token from the first line of this file (keep it mode 0600)",
        metavar="FILE",
    ),
    Setting(
        "generate_token", "--generate-token", "WSH_GENERATE_TOKEN", "generate_token",
        "bool", False,
        "on a non-loopback address without a token, make one and print it once",
    ),
    Setting(
        "tls_cert", "--tls-cert", "WSH_TLS_CERT", "tls_cert", "path", None,
        "serve TLS with this certificate chain", metavar="FILE",
    ),
    Setting(
        "tls_key", "--tls-key", "WSH_TLS_KEY", "tls_key", "path", None,
        "private key of the TLS certificate", metavar="FILE",
    ),
    Setting(
        "tls_client_ca", "--tls-client-ca", "WSH_TLS_CLIENT_CA", "tls_client_ca", "path",
        None, "require client certificates signed by this CA", metavar="FILE",
    ),
    Setting(
        "strict_routing", "--strict-routing", "WSH_STRICT_ROUTING", "strict_routing", "bool",
        False,
        "a call naming a session without --server/`server` goes to this server only, "
        "never to a backend that holds the name (for backends you do not trust)",
    ),
    Setting(
        "local_sessions", "--local-sessions", "WSH_LOCAL_SESSIONS", "local_sessions", "bool",
        True,
        "create sessions on this server; with --no-local-sessions a CreateSession must "
        "name a backend in `server` (hubs sharing backends behind a load balancer)",
    ),
    Setting(
        "max_sessions", "--max-sessions", "WSH_MAX_SESSIONS", "max_sessions", "int",
        defaults.MAX_SESSIONS,
        "sessions held at once, exited ones included until their retention ends; "
        "more are refused with TOO_MANY_SESSIONS",
        minimum=1, metavar="N",
    ),
    Setting(
        "exited_retention_s", "--exited-retention", "WSH_EXITED_RETENTION",
        "exited_retention", "float", defaults.EXITED_RETENTION_S,
        "how long an exited session stays readable", minimum=0, metavar="SECONDS",
    ),
    Setting(
        "scrollback_lines", "--scrollback", "WSH_SCROLLBACK", "scrollback", "int",
        defaults.SCROLLBACK_LINES, "lines each session keeps above its screen",
        minimum=0, metavar="LINES",
    ),
    Setting(
        "scrollback_bytes", "--scrollback-bytes", "WSH_SCROLLBACK_BYTES", "scrollback_bytes",
        "int", defaults.SCROLLBACK_BYTES,
        "memory each session's history may take; the oldest lines go first",
        minimum=0, metavar="BYTES",
    ),
    Setting(
        "max_attachers", "--max-attachers", "WSH_MAX_ATTACHERS", "max_attachers", "int",
        defaults.MAX_ATTACHERS,
        "Attach streams open on one session at once; more are refused with "
        "TOO_MANY_ATTACHERS",
        minimum=1, metavar="N",
    ),
    Setting(
        "attach_buffer_bytes", "--attach-buffer", "WSH_ATTACH_BUFFER", "attach_buffer",
        "int", defaults.ATTACH_BUFFER_BYTES,
        "output an attacher may have pending; past it the output is dropped and the "
        "attacher gets a new snapshot (a resync); at least 65536, one read of the PTY",
        minimum=65536, metavar="BYTES",
    ),
    Setting(
        "max_connections", "--max-connections", "WSH_MAX_CONNECTIONS", "max_connections",
        "int", None,
        "connections accepted at once, all clients together; by default 1024, fewer "
        "if the open-file limit needs it",
        minimum=1, metavar="N",
    ),
    Setting(
        "max_backends", "--max-backends", "WSH_MAX_BACKENDS", "max_backends", "int",
        DEFAULT_MAX_BACKENDS,
        "backends this hub registers; more are refused with TOO_MANY_BACKENDS",
        minimum=1, metavar="N",
    ),
    Setting(
        "log_level", "--log-level", "WSH_LOG", "log_level", "level", "INFO",
        "log messages of this level and above to stderr (" + ", ".join(LOG_LEVELS) + ")",
        metavar="LEVEL",
    ),
)  # fmt: skip
BY_NAME = {s.name: s for s in SETTINGS}
BY_KEY = {s.key: s for s in SETTINGS if s.key is not None}
TLS_KEYS = frozenset({"ca_file", "client_cert", "client_key"})
IP_ACCESS_KEYS = frozenset({"allowlist", "blocklist"})
SERVER_ENTRY_KEYS = frozenset({"address", "token", "hostname"})
