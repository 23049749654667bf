"""The TOML config file: reading it, checking it, and naming what is wrong."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import tomlkit
from tomlkit.exceptions import (
    InvalidCharInStringError,
    ParseError,
    TOMLKitError,
    UnexpectedCharError,
)
from tomlkit.toml_document import TOMLDocument

from wsh.config.model import DiscoveryEntry, FileConfig, Invalid, ServerEntry, TlsConfig
from wsh.config.settings import (
    BY_KEY,
    DEFAULT_DISCOVERY_GRACE_S,
    DEFAULT_DISCOVERY_INTERVAL_S,
    DEFAULT_DISCOVERY_PORT,
    DISCOVERY_KEYS,
    IP_ACCESS_KEYS,
    SERVER_ENTRY_KEYS,
    TLS_KEYS,
)
from wsh.config.values import check_value, type_name
from wsh.errors import Kind, WshError
from wsh.federation.ip_access import IpAccess
from wsh.names import is_valid_hostname
from wsh.text import printable, quote

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
            raise config_error(self.path, f"{where} must be a table, not {type_name(value)}")
        return value

    def string(self, table: dict[str, object], key: str, where: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise config_error(self.path, f"{where} must be a string, not {type_name(value)}")
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
    check.warn_unknown(server, frozenset(BY_KEY), "server")
    out: dict[str, object] = {}
    for key, value in server.items():
        setting = BY_KEY.get(key)
        # An empty string is how people blank a setting out; treat it as unset.
        if setting is None or value == "":
            continue
        try:
            out[setting.name] = check_value(setting, value, check.path.parent)
        except Invalid as exc:
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
    check.warn_unknown(tls_table, TLS_KEYS, "tls")
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
        check.warn_unknown(section, IP_ACCESS_KEYS, "ip_access")
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
        discovery=tuple(_check_discovery(check, raw)),
        ip_access=ip_access,
        warnings=tuple(check.warnings),
    )


def _number(
    check: _Checker, table: dict[str, object], key: str, where: str, default: float, least: float
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise config_error(check.path, f"{where} must be a number, not {type_name(value)}")
    if not value >= least:
        raise config_error(check.path, f"{where} must be at least {least:g}")
    return float(value)


def _check_discovery(check: _Checker, raw: dict[str, object]) -> Iterator[DiscoveryEntry]:
    entries = raw.get("discovery", [])
    if not isinstance(entries, list):
        raise config_error(check.path, "discovery must be an array of tables ([[discovery]])")
    for index, entry in enumerate(entries):
        where = f"discovery[{index}]"
        if not isinstance(entry, dict):
            raise config_error(check.path, f"{where} must be a table, not {type_name(entry)}")
        check.warn_unknown(entry, DISCOVERY_KEYS, where)
        name = check.string(entry, "name", f"{where}.name")
        if name is None or not is_valid_hostname(name.removesuffix(".").replace("_", "x")):
            raise config_error(check.path, f"{where}.name must be a DNS name")
        kind = (check.string(entry, "type", f"{where}.type") or "A").upper()
        if kind not in ("A", "SRV"):
            raise config_error(check.path, f"{where}.type must be A (A and AAAA) or SRV")
        scheme = check.string(entry, "scheme", f"{where}.scheme") or "http"
        if scheme not in ("http", "https"):
            raise config_error(check.path, f"{where}.scheme must be http or https")
        port = _number(check, entry, "port", f"{where}.port", DEFAULT_DISCOVERY_PORT, 1)
        if port != int(port) or port > 65535:
            raise config_error(check.path, f"{where}.port must be a port number")
        nameserver = check.string(entry, "nameserver", f"{where}.nameserver")
        if nameserver is not None:
            try:
                parse_nameserver(nameserver)
            except Invalid as exc:
                raise config_error(check.path, f"{where}.nameserver {exc}") from None
        yield DiscoveryEntry(
            name=name,
            srv=kind == "SRV",
            port=int(port),
            scheme=scheme,
            nameserver=nameserver,
            interval_s=_number(
                check, entry, "interval", f"{where}.interval", DEFAULT_DISCOVERY_INTERVAL_S, 1
            ),
            grace_s=_number(check, entry, "grace", f"{where}.grace", DEFAULT_DISCOVERY_GRACE_S, 0),
            token=check.string(entry, "token", f"{where}.token"),
        )


def parse_nameserver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` as (IP, port); raises Invalid."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise Invalid("must be IP or IP:PORT")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        if not number.isdigit():
            raise Invalid("must be IP or IP:PORT")
        port = int(number)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise Invalid("must be an IP address (IP or IP:PORT), not a name") from None
    if not 1 <= port <= 65535:
        raise Invalid("has a port out of range")
    return host, port


def _check_servers(check: _Checker, raw: dict[str, object]) -> Iterator[ServerEntry]:
    servers = raw.get("servers", [])
    if not isinstance(servers, list):
        raise config_error(check.path, "servers must be an array of tables ([[servers]])")
    for index, entry in enumerate(servers):
        where = f"servers[{index}]"
        if not isinstance(entry, dict):
            raise config_error(check.path, f"{where} must be a table, not {type_name(entry)}")
        check.warn_unknown(entry, SERVER_ENTRY_KEYS, where)
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
