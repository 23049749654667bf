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

from wsh.config.build import build_config, default_config_path, read_token_file, reload_file
from wsh.config.file import (
    check_document,
    config_error,
    load_file,
    parse_nameserver,
    parse_toml,
)
from wsh.config.model import (
    ConfigError,
    DiscoveryEntry,
    FileConfig,
    ServerConfig,
    ServerEntry,
    Sources,
    TlsConfig,
)
from wsh.config.settings import BY_NAME, DEFAULT_MAX_BACKENDS, LOG_LEVELS, SETTINGS, Setting
from wsh.config.values import env_values

__all__ = [
    "BY_NAME",
    "DEFAULT_MAX_BACKENDS",
    "LOG_LEVELS",
    "SETTINGS",
    "ConfigError",
    "DiscoveryEntry",
    "FileConfig",
    "ServerConfig",
    "ServerEntry",
    "Setting",
    "Sources",
    "TlsConfig",
    "build_config",
    "check_document",
    "config_error",
    "default_config_path",
    "env_values",
    "load_file",
    "parse_nameserver",
    "parse_toml",
    "read_token_file",
    "reload_file",
]
