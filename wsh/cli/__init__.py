"""The ``wsh`` command: terminal sessions from the shell, over :mod:`wsh.client`.

``wsh server ...`` runs a server (see ``wsh server --help``), ``wsh web ...``
the web view of a hub (``wsh web --help``); every other
command is a client call. Output is aligned text for people, or JSON with
``--json`` for scripts (:class:`~wsh.cli.output.Output` is the one place that
chooses). Each kind of failure has its own exit status
(:data:`~wsh.cli.output.EXIT_STATUSES`).

The modules: :mod:`.parser` (the command line), :mod:`.commands` (what each
command does), :mod:`.output` (text or JSON, exit statuses), :mod:`.render`
(text for people), :mod:`.escapes` (input escapes), :mod:`.spinner`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
from collections.abc import Sequence

from wsh.cli.commands import Handler
from wsh.cli.output import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Failure,
    Output,
    UsageError,
    rpc_failure,
)
from wsh.cli.parser import ParseError, build_parser
from wsh.client import Client, WshRpcError

__all__ = ["main"]


def _client(args: argparse.Namespace) -> Client:
    try:
        return Client(
            args.addr,
            token=args.token,
            ca_file=args.ca_file,
            client_cert=args.client_cert,
            client_key=args.client_key,
            timeout=args.deadline_s,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise Failure(
            f"cannot read {exc.filename}: {exc.strerror}",
            code="FAILED_PRECONDITION",
            reason="FILE_UNREADABLE",
            labelled=False,
        ) from None


def _wants_json(argv: Sequence[str]) -> bool:
    # For a command line that does not parse: --json among the options (not
    # after `--`, where it would be a TEXT argument).
    return "--json" in itertools.takewhile(lambda arg: arg != "--", argv)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    # Known args only: `wsh --json server --listen x` is refused in _run with a
    # better message than "unrecognized arguments: --listen".
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.handler is not None:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _run(argv: list[str]) -> int:
    if argv[:1] == ["server"]:
        # Imported here so that client commands never load the server's stack.
        from wsh.cli.server import main as server_main

        return server_main(argv[1:])
    if argv[:1] == ["web"]:
        from wsh.cli.web import main as web_main

        return web_main(argv[1:])
    if argv[:1] == ["mcp"]:
        from wsh.cli.mcp import main as mcp_main

        return mcp_main(argv[1:])
    try:
        args = _parse(argv)
    except SystemExit as exc:  # argparse exits on --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except ParseError as exc:
        if not _wants_json(argv):
            exc.print_text()
            return EXIT_USAGE
        hint = f"`{exc.parser.prog} --help` shows the usage"
        Output(json_mode=True).error(UsageError(exc.message, hint=hint))
        return EXIT_USAGE
    out = Output(args.json)
    try:
        if args.handler is None:
            name = args.command
            raise UsageError(f"`{name}` takes its own options, after it: wsh {name} --help")
        with _client(args) as client:
            try:
                handler: Handler = args.handler
                handler(client, args, out)
                return EXIT_OK
            except WshRpcError as exc:
                raise rpc_failure(exc, client.addr) from None
    except Failure as failure:
        out.error(failure)
        return failure.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wsh`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    try:
        status = _run(list(sys.argv[1:] if argv is None else argv))
        # Inside the try: a reader that went away shows here, not at exit.
        sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # What the Python docs advise: point stdout at /dev/null so that the
        # interpreter's own flush at exit does not fail (and print) again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
