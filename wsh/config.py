"""The server's configuration: one frozen :class:`ServerConfig`, built once.

:func:`build_config` resolves every setting from, in order of precedence,
command-line flags, ``WSH_*`` environment variables, the TOML config file
and the defaults. :data:`SETTINGS` is the one table of the settings and their
spellings in each source (``docs/CONFIG.md`` shows it to people; a test
keeps the two in step). A bad value in a flag or variable raises
:class:`ConfigError` naming it (``wsh server`` makes that a usage error); a
bad file raises ``WshError(INVALID_ARGUMENT, "CONFIG_INVALID")`` naming the
file and the key (quoting the value only for hostnames and log levels: a
string setting may be a token).

``listen`` and ``config_path`` have no file key (the default file is named
after the listen address; the file cannot name itself). The other sections
are file-only, because ``ReloadConfig`` re-reads them
(:func:`reload_file`) and a flag would pin them for the process's life:
``default_token``, ``[tls]`` (the hub's side of ``https://`` backends),
``[ip_access]`` and ``[[servers]]``.

Reading the file blocks; call :func:`load_file` and :func:`reload_file`
from asyncio code with ``asyncio.to_thread``.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tomlkit
from tomlkit.exceptions import (
    InvalidCharInStringError,
    ParseError,
    TOMLKitError,
    UnexpectedCharError,
)
from tomlkit.toml_document import TOMLDocument

from wsh import defaults
from wsh.errors import Kind, WshError
from wsh.federation.ip_access import IpAccess
from wsh.names import is_valid_hostname
from wsh.text import printable, quote

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Backends one hub will register. Each costs a channel, a reconnect loop and
# a config entry: 494 unreachable ones kept an idle hub at 51% of a core.
DEFAULT_MAX_BACKENDS = 256
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

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
_BY_KEY = {s.key: s for s in SETTINGS if s.key is not None}
_TLS_KEYS = frozenset({"ca_file", "client_cert", "client_key"})
_IP_ACCESS_KEYS = frozenset({"allowlist", "blocklist"})
_SERVER_ENTRY_KEYS = frozenset({"address", "token", "hostname"})


class ConfigError(ValueError):
    """A bad value in a flag or an environment variable (``source`` names it)."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class _Invalid(ValueError):
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
    max_sessions: int = defaults.MAX_SESSIONS
    exited_retention_s: float = defaults.EXITED_RETENTION_S
    scrollback_lines: int = defaults.SCROLLBACK_LINES
    scrollback_bytes: int = defaults.SCROLLBACK_BYTES
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


# --- Values -------------------------------------------------------------------


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return "a date or time"
    return type(value).__name__


_EXPECTED = {
    "text": "a string",
    "hostname": "a string",
    "path": "a string",
    "level": "a string",
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
}


def _from_text(setting: Setting, text: str) -> object:
    """A flag's or variable's text as the setting's type."""
    if setting.type == "bool":
        word = text.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise _Invalid(f"{quote(text)} is not a boolean (1, true, yes, on, 0, false, no, off)")
    if setting.type in ("int", "float"):
        try:
            return int(text) if setting.type == "int" else float(text)
        except ValueError:
            raise _Invalid(f"{quote(text)} is not {_EXPECTED[setting.type]}") from None
    return text


def _check(setting: Setting, value: object, base: Path | None) -> object:
    """``value`` (typed) checked against the setting's rules; paths resolved
    against ``base`` (the config file's directory) when given."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        "bool": isinstance(value, bool),
        "int": number and isinstance(value, int),
        "float": number,
    }.get(setting.type, isinstance(value, str))
    if not ok:
        raise _Invalid(f"must be {_EXPECTED[setting.type]}, not {_type_name(value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _Invalid("must be a finite number")
        if setting.minimum is not None and value < setting.minimum:
            raise _Invalid(f"must be at least {setting.minimum:g}")
        return float(value) if setting.type == "float" else value
    if not isinstance(value, str):
        return value
    if setting.type == "hostname" and not is_valid_hostname(value):
        raise _Invalid(
            f"{quote(value)} is not a valid hostname "
            "(RFC 1123: labels of letters, digits and '-', at most 253 characters)"
        )
    if setting.type == "level":
        if value.upper() not in LOG_LEVELS:
            raise _Invalid(f"{quote(value)} is not one of {', '.join(LOG_LEVELS)}")
        return value.upper()
    if setting.type == "path":
        path = Path(value).expanduser()
        return base / path if base is not None else path
    return value


def _given(
    values: Mapping[str, object | None], source: Literal["flag", "env"]
) -> dict[str, object]:
    """The flags or variables given, typed and checked; an empty one is unset."""
    out: dict[str, object] = {}
    for name, raw in values.items():
        if raw is None or raw == "":
            continue
        setting = BY_NAME[name]
        where = setting.flag if source == "flag" else setting.env
        assert where is not None
        try:
            value = _from_text(setting, raw) if isinstance(raw, str) else raw
            out[name] = _check(setting, value, None)
        except _Invalid as exc:
            raise ConfigError(where, str(exc)) from None
    return out


def env_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings' variables present in ``environ``, by setting name."""
    return {s.name: environ[s.env] for s in SETTINGS if s.env is not None and s.env in environ}


# --- Building -----------------------------------------------------------------


def build_config(
    flags: Mapping[str, object | None], environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """The server's config: ``flags`` (by setting name; None or absent: not
    given) over the environment over the config file over the defaults.

    Raises :class:`ConfigError` for a bad flag or variable and ``WshError``
    for a bad config file (``CONFIG_INVALID``) or token file (``TOKEN_FILE``).
    Reads files: not for the event loop.
    """
    sources = Sources(
        flags=_given(flags, "flag"),
        env=_given(env_values(os.environ if environ is None else environ), "env"),
    )
    for layer, spell in ((sources.flags, "flag"), (sources.env, "env")):
        if "token" in layer and "token_file" in layer:
            first, second = (
                ("--token", "--token-file") if spell == "flag" else ("WSH_TOKEN", "WSH_TOKEN_FILE")
            )
            raise ConfigError(first, f"give either {first} or {second}, not both")
    listen = str(_pick("listen", sources, {}))
    config_path = sources.flags.get("config_path") or sources.env.get("config_path")
    assert config_path is None or isinstance(config_path, Path)
    file = load_file(config_path or default_config_path(listen))
    config = _resolve(file, sources, listen)
    _check_together(config, sources, file)
    token, warnings = _token(sources, file)
    return dataclasses.replace(config, token=token, warnings=(*file.warnings, *warnings))


def _pick(name: str, sources: Sources, file: Mapping[str, object]) -> object:
    for layer in (sources.flags, sources.env, file):
        if name in layer:
            return layer[name]
    return BY_NAME[name].default


def _resolve(file: FileConfig, sources: Sources, listen: str) -> ServerConfig:
    def pick(name: str) -> object:
        return _pick(name, sources, file.settings)

    return ServerConfig(
        listen=listen,
        config_path=file.path,
        hostname=_opt_str(pick("hostname")),
        generate_token=bool(pick("generate_token")),
        tls_cert=_opt_path(pick("tls_cert")),
        tls_key=_opt_path(pick("tls_key")),
        tls_client_ca=_opt_path(pick("tls_client_ca")),
        strict_routing=bool(pick("strict_routing")),
        max_sessions=_int(pick("max_sessions")),
        exited_retention_s=float(_num(pick("exited_retention_s"))),
        scrollback_lines=_int(pick("scrollback_lines")),
        scrollback_bytes=_int(pick("scrollback_bytes")),
        max_connections=None if pick("max_connections") is None else _int(pick("max_connections")),
        max_backends=_int(pick("max_backends")),
        log_level=str(pick("log_level")),
        default_token=file.default_token,
        backend_tls=file.tls,
        ip_access=file.ip_access,
        servers=file.servers,
        warnings=file.warnings,
        sources=sources,
    )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_path(value: object) -> Path | None:
    assert value is None or isinstance(value, Path)
    return value


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _num(value: object) -> float:
    assert isinstance(value, int | float)
    return value


def _spellings(name: str) -> str:
    setting = BY_NAME[name]
    return f"{setting.flag} ({setting.env}, [server] {setting.key})"


def _check_together(config: ServerConfig, sources: Sources, file: FileConfig) -> None:
    """Settings that only make sense together."""
    if (config.tls_cert is None) != (config.tls_key is None):
        given = "tls_cert" if config.tls_cert is not None else "tls_key"
        raise ConfigError(
            _source_of(given, sources, file),
            f"{_spellings('tls_cert')} and {_spellings('tls_key')} go together",
        )
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise ConfigError(
            _source_of("tls_client_ca", sources, file),
            f"{_spellings('tls_client_ca')} needs a TLS certificate and key",
        )


def _source_of(name: str, sources: Sources, file: FileConfig) -> str:
    setting = BY_NAME[name]
    if name in sources.flags and setting.flag:
        return setting.flag
    if name in sources.env and setting.env:
        return setting.env
    return f"config file {file.path} [server] {setting.key}"


def _token(sources: Sources, file: FileConfig) -> tuple[str | None, list[str]]:
    """The token from the first source that gives one (itself or a file)."""
    for layer in (sources.flags, sources.env, file.settings):
        token_file = layer.get("token_file")
        if isinstance(token_file, Path):
            return read_token_file(token_file)
        token = layer.get("token")
        if isinstance(token, str):
            warnings = []
            if layer is sources.flags:
                warnings.append(
                    "--token on the command line is visible to every user of this machine "
                    "(ps); use --token-file or WSH_TOKEN instead"
                )
            return token, warnings
    return None, []


def read_token_file(path: Path) -> tuple[str, list[str]]:
    """The first line of ``path``, stripped, and a warning when others may read it."""
    try:
        with path.open(encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            token = f.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise WshError(
            Kind.INVALID_ARGUMENT, "TOKEN_FILE", f"Cannot read the token file {path}: {exc}."
        ) from None
    if not token:
        raise WshError(Kind.INVALID_ARGUMENT, "TOKEN_FILE", f"The token file {path} is empty.")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return token, [f"the token file {path} is readable by other users: chmod 600 it"]
    return token, []


def reload_file(config: ServerConfig) -> ServerConfig:
    """``config`` with what a reload changes read from its file again: the
    backends, ``default_token``, ``[tls]``, ``[ip_access]`` and
    ``max_backends`` (a flag or variable still wins), with the file's warnings.

    Raises ``WshError(CONFIG_INVALID)`` for a file the server could not start with.
    """
    file = load_file(config.config_path)
    return dataclasses.replace(
        config,
        max_backends=_int(_pick("max_backends", config.sources, file.settings)),
        default_token=file.default_token,
        backend_tls=file.tls,
        ip_access=file.ip_access,
        servers=file.servers,
        warnings=file.warnings,
    )


def default_config_path(listen: str) -> Path | None:
    """The config file of a server started without ``--config``: one per listen
    address, so that two servers on one machine never share registrations
    (a backend would link to whatever its neighbour was told to). A random
    port (0) has none: the next run could not find it again."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")) / "wsh"
    if listen.startswith("unix:"):
        path = listen.removeprefix("unix:").removeprefix("//")
        return base / f"server-unix-{path.replace('/', '_')}.toml"
    host, _, port = listen.rpartition(":")
    if port.strip() in ("0", ""):
        return None
    host = re.sub(r"[^A-Za-z0-9._-]", "_", host.strip("[]"))
    return base / f"server-{host}-{port.strip()}.toml"


# --- The file -----------------------------------------------------------------


def config_error(path: Path, problem: str) -> WshError:
    return WshError(
        Kind.INVALID_ARGUMENT,
        "CONFIG_INVALID",
        f"Config file {path}: {problem}.",
        {"path": str(path)},
    )


def load_file(path: Path | None) -> FileConfig:
    """Read and check the config file; a missing file (or None) gives an empty one.

    Raises ``WshError(INVALID_ARGUMENT, "CONFIG_INVALID")`` naming the path and
    the problem when the file cannot be read, is not valid TOML, or a setting
    has the wrong type or value. Messages never quote strings that may be tokens.
    Addresses in ``[[servers]]`` are not checked here: one bad entry must not
    stop the server, so callers check each one (see ``diff_servers``).
    """
    if path is None:
        return FileConfig(path=None)
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            data = file.read()
    except FileNotFoundError:
        return FileConfig(path=path)
    except OSError as exc:
        raise config_error(path, f"cannot read it: {exc.strerror or exc}") from None
    config = check_document(path, parse_toml(path, data))
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warning = (
            f"config file {path} is readable by other users; it may hold tokens (chmod 600 {path})"
        )
        config = dataclasses.replace(config, warnings=(*config.warnings, warning))
    return config


def parse_toml(path: Path, data: bytes) -> TOMLDocument:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise config_error(path, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise config_error(
            path, f"invalid TOML at line {exc.line}, column {exc.col}: {_describe(exc)}"
        ) from None
    except (TOMLKitError, ValueError):
        raise config_error(path, "invalid TOML") from None


def _describe(exc: ParseError) -> str:
    # These two quote the offending character, which may sit inside a token.
    if isinstance(exc, UnexpectedCharError):
        return "unexpected character"
    if isinstance(exc, InvalidCharInStringError):
        return "invalid character in a string"
    return str(exc).removesuffix(f" at line {exc.line} col {exc.col}").rstrip(".")


class _Checker:
    """Reads typed settings out of the unwrapped document, naming each bad one
    by its key (never its value) and collecting warnings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []

    def table(self, parent: dict[str, object], key: str, where: str) -> dict[str, object]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            raise config_error(self.path, f"{where} must be a table, not {_type_name(value)}")
        return value

    def string(self, table: dict[str, object], key: str, where: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise config_error(self.path, f"{where} must be a string, not {_type_name(value)}")
        # An empty string is how people blank a setting out; treat it as unset.
        return value or None

    def strings(self, table: dict[str, object], key: str, where: str) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise config_error(self.path, f"{where} must be an array of strings")
        return list(value)

    def file_path(self, table: dict[str, object], key: str, where: str) -> Path | None:
        value = self.string(table, key, where)
        if value is None:
            return None
        return self.path.parent / Path(value).expanduser()

    def warn_unknown(self, table: dict[str, object], known: frozenset[str], where: str) -> None:
        for key in table:
            if key not in known:
                self.warnings.append(
                    f"config file {self.path}: unknown setting {where}.{printable(key)} ignored"
                )


def _server_settings(check: _Checker, server: dict[str, object]) -> dict[str, object]:
    """The ``[server]`` table's settings, typed and checked, by setting name."""
    check.warn_unknown(server, frozenset(_BY_KEY), "server")
    out: dict[str, object] = {}
    for key, value in server.items():
        setting = _BY_KEY.get(key)
        # An empty string is how people blank a setting out; treat it as unset.
        if setting is None or value == "":
            continue
        try:
            out[setting.name] = _check(setting, value, check.path.parent)
        except _Invalid as exc:
            # Type errors name the type, not the value; only hostnames quote theirs.
            raise config_error(check.path, f"[server] {key} {exc}") from None
    if "token" in out and "token_file" in out:
        raise config_error(check.path, "[server] token and token_file: give one, not both")
    return out


def check_document(path: Path, document: TOMLDocument) -> FileConfig:
    """The checked content of a parsed config file (see :func:`load_file`)."""
    raw: dict[str, object] = document.unwrap()
    check = _Checker(path)
    settings = _server_settings(check, check.table(raw, "server", "[server]"))

    tls_table = check.table(raw, "tls", "[tls]")
    check.warn_unknown(tls_table, _TLS_KEYS, "tls")
    tls = TlsConfig(
        ca_file=check.file_path(tls_table, "ca_file", "[tls] ca_file"),
        client_cert=check.file_path(tls_table, "client_cert", "[tls] client_cert"),
        client_key=check.file_path(tls_table, "client_key", "[tls] client_key"),
    )
    if (tls.client_cert is None) != (tls.client_key is None):
        raise config_error(path, "[tls] client_cert and client_key must be given together")

    ip_access: IpAccess | None = None
    if "ip_access" in raw:
        section = check.table(raw, "ip_access", "[ip_access]")
        check.warn_unknown(section, _IP_ACCESS_KEYS, "ip_access")
        try:
            ip_access = IpAccess.from_lists(
                check.strings(section, "allowlist", "[ip_access] allowlist"),
                check.strings(section, "blocklist", "[ip_access] blocklist"),
            )
        except WshError as exc:
            if exc.reason != "CONFIG_INVALID":
                raise
            raise config_error(path, exc.message.removesuffix(".")) from None

    return FileConfig(
        path=path,
        exists=True,
        settings=settings,
        default_token=check.string(raw, "default_token", "default_token"),
        tls=tls,
        servers=tuple(_check_servers(check, raw)),
        ip_access=ip_access,
        warnings=tuple(check.warnings),
    )


def _check_servers(check: _Checker, raw: dict[str, object]) -> Iterator[ServerEntry]:
    servers = raw.get("servers", [])
    if not isinstance(servers, list):
        raise config_error(check.path, "servers must be an array of tables ([[servers]])")
    for index, entry in enumerate(servers):
        where = f"servers[{index}]"
        if not isinstance(entry, dict):
            raise config_error(check.path, f"{where} must be a table, not {_type_name(entry)}")
        check.warn_unknown(entry, _SERVER_ENTRY_KEYS, where)
        address = check.string(entry, "address", f"{where}.address")
        if address is None:
            raise config_error(check.path, f"{where} has no address")
        hostname = check.string(entry, "hostname", f"{where}.hostname")
        if hostname is not None and not is_valid_hostname(hostname):
            check.warnings.append(
                f"config file {check.path}: {where}.hostname {quote(hostname)} is not a valid "
                "hostname; ignored (the hub learns it again on the next link)"
            )
            hostname = None
        yield ServerEntry(
            address=address,
            token=check.string(entry, "token", f"{where}.token"),
            hostname=hostname,
        )
