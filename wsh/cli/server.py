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
import datetime
import json
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


class JsonFormatter(logging.Formatter):
    """One JSON object per record and line: ``time`` (UTC, RFC 3339),
    ``level``, ``logger``, ``message``, and ``trace_id`` and ``span_id`` when
    logged in a traced call; ``exception`` with its traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("trace_id", "span_id"):
            if getattr(record, key, ""):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text", traced: bool = False) -> None:
    """The server's one logging setup: records of ``level`` and above to stderr,
    one line each (tests and operators grep them), as text or JSON
    (``fmt``); with ``traced``, each carries the ids of its span."""
    handler = logging.StreamHandler(sys.stderr)
    text = LOG_FORMAT + ("%(trace)s" if traced else "")
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text))
    if traced:
        from wsh.api.tracing import TraceIds

        handler.addFilter(TraceIds())
    logging.basicConfig(level=level, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wsh server``; returns the exit status."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
        setup_logging(config.log_level, config.log_format, config.tracing)
        for warning in config.warnings:
            log.warning("%s", warning)
        asyncio.run(serve(config))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except WshError as err:
        print(f"wsh server: {err.reason}: {err.message}", file=sys.stderr)
        return EXIT_FAILED
    return 0
