"""The ``watch`` command: the cluster's session and server events as they come."""

from __future__ import annotations

import argparse

from wsh.cli.output import Output
from wsh.cli.render import watch_line
from wsh.client import Client


def watch(client: Client, args: argparse.Namespace, out: Output) -> None:
    """One line per event (one JSON object per line with --json) until
    interrupted: Ctrl-C (130) and a closed stdout (141) end it as any command."""
    with client.watch(tags=args.tag or (), server=args.server) as stream:
        for event in stream:
            out.result(event, watch_line(event), compact=True)
