"""Session commands: create, list, get, send, screen, scrollback, kill, rename, tag, resize."""

from __future__ import annotations

import argparse

from wsh.cli.commands import colour, input_bytes, nothing, screen_format, shows
from wsh.cli.output import Output, UsageError
from wsh.cli.render import (
    MESSAGE_ERROR_CHARS,
    SESSION_HEADERS,
    format_table,
    render_lines,
    server_label,
    server_status,
    session_details,
    session_row,
)
from wsh.client import Client
from wsh.v1 import hub_pb2, types_pb2


@shows(session_details)
def create(client: Client, args: argparse.Namespace) -> types_pb2.Session:
    return client.create_session(
        args.name,
        server=args.server,
        command=args.command,
        rows=args.rows,
        cols=args.cols,
        cwd=args.cwd,
        env=dict(args.env or ()),
        tags=args.tag or (),
    )


def list_sessions(client: Client, args: argparse.Namespace, out: Output) -> None:
    response = client.list_sessions_response(server=args.server, tags=args.tag or ())
    # JSON: the response as it is, {"sessions": [...], "missing_servers": [...]}.
    out.result(response, format_table(SESSION_HEADERS, map(session_row, response.sessions)))
    for server in response.missing_servers:
        status = server_status(server, MESSAGE_ERROR_CHARS)
        out.warning(f"sessions of {server_label(server)} not listed: {status}")


@shows(session_details)
def get(client: Client, args: argparse.Namespace) -> types_pb2.Session:
    return client.get_session(args.name, server=args.server)


@shows(nothing)
def send(client: Client, args: argparse.Namespace) -> hub_pb2.SendInputResponse:
    return client.send_input(args.name, input_bytes(args), server=args.server)


def screen(client: Client, args: argparse.Namespace, out: Output) -> None:
    shown = client.get_screen(args.name, server=args.server, format=screen_format(args, out))
    out.result(shown, render_lines(shown.lines, shown.styled_lines, colour(args)))


def scrollback(client: Client, args: argparse.Namespace, out: Output) -> None:
    page = client.get_scrollback(
        args.name,
        server=args.server,
        offset=args.offset,
        limit=args.limit,
        format=screen_format(args, out),
    )
    out.result(page, render_lines(page.lines, page.styled_lines, colour(args)))


@shows(nothing)
def kill(client: Client, args: argparse.Namespace) -> None:
    client.kill_session(args.name, server=args.server)


@shows(session_details)
def rename(client: Client, args: argparse.Namespace) -> types_pb2.Session:
    return client.update_session(args.name, server=args.server, new_name=args.new_name)


@shows(session_details)
def tag(client: Client, args: argparse.Namespace) -> types_pb2.Session:
    if not (args.add or args.remove):
        raise UsageError("tag: give --add TAG and/or --remove TAG")
    return client.update_session(
        args.name, server=args.server, add_tags=args.add or (), remove_tags=args.remove or ()
    )


@shows(session_details)
def resize(client: Client, args: argparse.Namespace) -> types_pb2.Session:
    return client.resize_session(args.name, args.rows, args.cols, server=args.server)
