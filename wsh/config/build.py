"""Resolving every setting: flag > ``WSH_*`` variable > the file > default, checked once."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from wsh.config.file import load_file
from wsh.config.model import ConfigError, FileConfig, ServerConfig, Sources
from wsh.config.settings import BY_NAME
from wsh.config.values import env_values, given
from wsh.errors import Kind, WshError

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
        flags=given(flags, "flag"),
        env=given(env_values(os.environ if environ is None else environ), "env"),
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
        local_sessions=bool(pick("local_sessions")),
        max_sessions=_int(pick("max_sessions")),
        exited_retention_s=float(_num(pick("exited_retention_s"))),
        scrollback_lines=_int(pick("scrollback_lines")),
        scrollback_bytes=_int(pick("scrollback_bytes")),
        max_attachers=_int(pick("max_attachers")),
        attach_buffer_bytes=_int(pick("attach_buffer_bytes")),
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
