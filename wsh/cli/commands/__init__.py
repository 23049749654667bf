"""The commands, by area: :mod:`.sessions`, :mod:`.waiting` (idle, run, race),
:mod:`.watching` (watch), :mod:`.servers`.

A handler gets the client, the parsed arguments and the :class:`Output`; it
prints through the output and raises :class:`Failure` to fail, so that every
exit status but 0 comes from one place.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from wsh.cli.escapes import decode_escapes, raw_bytes
from wsh.cli.output import Output, UsageError
from wsh.client import Client

Handler = Callable[[Client, argparse.Namespace, Output], None]
Call = TypeVar("Call")


def shows(
    text: Callable[[Call], str | None],
) -> Callable[[Callable[[Client, argparse.Namespace], Call]], Handler]:
    """A handler from a function making one call: its answer is printed as ``text(answer)``,
    or as JSON (``{}`` for an answer of None)."""

    def handler_of(call: Callable[[Client, argparse.Namespace], Call]) -> Handler:
        def handler(client: Client, args: argparse.Namespace, out: Output) -> None:
            answer = call(client, args)
            out.result(answer, text(answer))

        handler.__doc__ = call.__doc__
        return handler

    return handler_of


def nothing(_: object) -> None:
    """No text: the command's success is its exit status."""
    return None


def colour(args: argparse.Namespace) -> bool:
    """Whether to print screens in colour: asked for, on a terminal, and not NO_COLOR."""
    return bool(args.styled) and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def screen_format(args: argparse.Namespace, out: Output) -> str:
    """The screen format to ask the server for."""
    # Styled spans cost the server more to render; only ask when they will be
    # shown in colour or handed to a script.
    return "styled" if args.styled and (out.json or colour(args)) else "plain"


def input_bytes(args: argparse.Namespace) -> bytes:
    """The input to send: TEXT with its escapes decoded, TEXT verbatim, or standard input."""
    if args.stdin:
        if args.text is not None:
            raise UsageError("give TEXT or --stdin, not both")
        return sys.stdin.buffer.read()
    if args.text is None:
        raise UsageError("give TEXT, or --stdin to read the input from standard input")
    if args.no_escapes:
        return raw_bytes(args.text)
    try:
        return decode_escapes(args.text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
