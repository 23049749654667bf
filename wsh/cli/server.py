"""``wsh server``: its command line, logging, and the run of :func:`wsh.server.serve`.

The options are made from :data:`wsh.config.SETTINGS` and only fill the
config; :func:`wsh.config.build_config` resolves them against the
environment, the config file and the defaults. Exit statuses: 0 after a
clean shutdown, 1 when the server cannot start (``REASON: message`` on
stderr), 2 for a bad flag or variable (usage).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from wsh.config import BY_NAME, SETTINGS, ConfigError, ServerConfig, Setting, build_config
from wsh.errors import WshError
from wsh.server import serve

log = logging.getLogger("wsh.server")

# gRPC's threads hand finished I/O to the event loop and need the GIL to do
# it; while the loop emulates a flood of output they would wait the default
# 5 ms per hand-over, several times per call.
SWITCH_INTERVAL_S = 0.0005
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_FAILED = 1
EXIT_USAGE = 2


def _help(setting: Setting) -> str:
    also = f"${setting.env}" + (f" or [server] {setting.key}" if setting.key else "")
    default = setting.default
    shown = "" if default is None or isinstance(default, bool) else f"; default {default}"
    return f"{setting.help} (also {also}{shown})".replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsh server",
        description="Run a wsh server. Every option can also be set by an environment "
        "variable and most in the config file's [server] table; a flag wins over a "
        "variable, which wins over the file (docs/CONFIG.md).",
    )
    for setting in SETTINGS:
        assert setting.flag is not None
        if setting.type == "bool":
            # --no-X overrides a variable or the file.
            parser.add_argument(
                setting.flag,
                dest=setting.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=_help(setting),
            )
        else:
            # Checked with the variables and the file in wsh.config, not here.
            parser.add_argument(
                setting.flag, dest=setting.name, metavar=setting.metavar, help=_help(setting)
            )
    return parser


def parse_args(argv: Sequence[str]) -> ServerConfig:
    """The config from ``argv``, the environment and the config file; a bad flag
    or variable exits with a usage error (2)."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    flags = {name: getattr(args, name) for name in BY_NAME}
    try:
        return build_config(flags)
    except ConfigError as exc:
        parser.error(str(exc))


def setup_logging(level: str) -> None:
    """The server's one logging setup: records of ``level`` and above to stderr,
    one line each (tests and operators grep them)."""
    logging.basicConfig(level=level, stream=sys.stderr, format=LOG_FORMAT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wsh server``; returns the exit status."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
        setup_logging(config.log_level)
        for warning in config.warnings:
            log.warning("%s", warning)
        asyncio.run(serve(config))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except WshError as err:
        print(f"wsh server: {err.reason}: {err.message}", file=sys.stderr)
        return EXIT_FAILED
    return 0
