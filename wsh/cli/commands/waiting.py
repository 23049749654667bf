"""Commands that wait for sessions to go quiet: idle, run, race."""

from __future__ import annotations

import argparse
from typing import TypedDict

import grpc

from wsh.cli.commands import colour, input_bytes, screen_format
from wsh.cli.output import Output
from wsh.cli.render import idle_lines
from wsh.cli.spinner import Spinner
from wsh.client import Client, WshRpcError
from wsh.v1 import types_pb2


class _Wait(TypedDict):
    server: str
    timeout_ms: int
    max_wait_ms: int
    format: str


def _wait(args: argparse.Namespace, out: Output) -> _Wait:
    """The options every wait takes: scope, quiet time, bound and screen format."""
    return {
        "server": args.server,
        "timeout_ms": args.quiet_ms,
        "max_wait_ms": args.max_wait_ms,
        "format": screen_format(args, out),
    }


def _mode(ready: bool) -> str:
    return "ready" if ready else "quiet"


def _show(
    idle: types_pb2.Idle,
    args: argparse.Namespace,
    out: Output,
    *,
    header: bool = False,
    compact: bool = False,
    gap: bool = False,
) -> None:
    out.result(idle, idle_lines(idle, colour(args), header=header, gap=gap), compact=compact)


def idle(client: Client, args: argparse.Namespace, out: Output) -> None:
    with Spinner(f"waiting for {args.name} to settle"):
        settled = client.await_idle(
            args.name,
            last_generation=args.last_generation,
            fresh=args.fresh,
            mode=_mode(args.ready),
            **_wait(args, out),
        )
    _show(settled, args, out)


def run(client: Client, args: argparse.Namespace, out: Output) -> None:
    data = input_bytes(args)
    # No --ready nor --no-ready: the SDK picks by the session's foreground.
    mode = None if args.ready is None else _mode(args.ready)
    with Spinner(f"running in {args.name}"):
        settled = client.run(args.name, data, mode=mode, **_wait(args, out))
    _show(settled, args, out)


def race(client: Client, args: argparse.Namespace, out: Output) -> None:
    stream = client.race_idle(
        tags=args.tag or (),
        last_session=args.last_session,
        last_server=args.last_server,
        last_generation=args.last_generation,
        exclude=args.exclude,
        fresh=args.fresh,
        mode=_mode(args.ready),
        **_wait(args, out),
    )
    shown = 0
    streaming = args.all or args.count > 0
    settled: set[tuple[str, str]] = set()
    with stream:
        while True:
            try:
                with Spinner("waiting for a session to settle"):
                    quiet = next(stream, None)
            except WshRpcError as exc:
                # With --all the stream ends by running out of max-wait once
                # nothing new settles: that is the normal end, not a failure;
                # with --count it is one, fewer than N sessions settled.
                if args.all and shown and exc.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return
                raise
            if quiet is None:
                return
            # One JSON object per line, so a consumer can act on each as it comes.
            _show(quiet, args, out, header=True, compact=streaming, gap=shown > 0)
            shown += 1
            settled.add((quiet.server, quiet.session))
            if not streaming or len(settled) == args.count:
                return
