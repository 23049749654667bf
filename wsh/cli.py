"""The ``wsh`` command: terminal sessions from the shell, over :mod:`wsh.client`.

``wsh server ...`` runs a server (see ``wsh server --help``); every other
command is a client call. Output is aligned text for people, or JSON with
``--json`` for scripts. Exit status: 0 on success, 1 when a call fails, 2 on
usage errors, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from string import hexdigits
from types import TracebackType
from typing import Any, Self, TextIO

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from wsh.client import DEFAULT_IDLE_MS, Client, WshRpcError
from wsh.defaults import DEFAULT_ADDR
from wsh.v1 import hub_pb2, types_pb2

_Handler = Callable[[Client, argparse.Namespace], int]


class UsageError(Exception):
    """A command line that parses but makes no sense; exit status 2."""


# --- Text in: escapes ----------------------------------------------------------

_ESCAPES = {
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "e": b"\x1b",
    "\\": b"\\",
    "0": b"\0",
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "v": b"\v",
}
_HEX_WIDTH = {"x": 2, "u": 4}


def _raw(text: str) -> bytes:
    # Arguments that were not valid UTF-8 reach Python as surrogate escapes;
    # this gives back the bytes the user typed.
    return text.encode("utf-8", "surrogateescape")


def decode_escapes(text: str) -> bytes:
    """Turn C-style escapes in ``text`` into the bytes to type.

    ``\\n \\r \\t \\e \\\\ \\0 \\a \\b \\f \\v`` are single bytes, ``\\xNN`` is
    the byte NN (``\\x03`` is Ctrl-C), ``\\uNNNN`` is that character in UTF-8.
    Anything else after a backslash raises ``ValueError``.
    """
    out = bytearray()
    pos = 0
    while pos < len(text):
        slash = text.find("\\", pos)
        if slash < 0:
            out += _raw(text[pos:])
            break
        out += _raw(text[pos:slash])
        kind = text[slash + 1 : slash + 2]
        if kind in _ESCAPES:
            out += _ESCAPES[kind]
            pos = slash + 2
        elif kind in _HEX_WIDTH:
            width = _HEX_WIDTH[kind]
            digits = text[slash + 2 : slash + 2 + width]
            if len(digits) != width or not all(c in hexdigits for c in digits):
                raise ValueError(f"\\{kind} at position {slash} needs {width} hex digits")
            value = int(digits, 16)
            if kind == "x":
                out.append(value)
            else:
                try:
                    out += chr(value).encode()
                except UnicodeEncodeError:
                    raise ValueError(
                        f"\\u{digits} at position {slash} is a lone surrogate"
                    ) from None
            pos = slash + 2 + width
        elif not kind:
            raise ValueError("trailing backslash; write \\\\ for a literal one")
        else:
            raise ValueError(
                f"unknown escape \\{kind} at position {slash}; "
                "use --no-escapes to send text verbatim"
            )
    return bytes(out)


# --- Text out: tables, details, screens, JSON ---------------------------------

# C0, DEL and C1 controls: text from servers is printed to a terminal, where
# these would be obeyed (cursor moves, OSC clipboard writes) instead of shown.
_CONTROLS = {c: "\ufffd" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def printable(text: str) -> str:
    """``text`` with control characters replaced, safe to print on a terminal."""
    return text.translate(_CONTROLS)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned on the widest cell, two spaces apart, no trailing blanks."""
    table = [list(headers), *([printable(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def format_details(pairs: Sequence[tuple[str, str]]) -> str:
    """``key: value`` lines with the values aligned."""
    width = max(len(key) for key, _ in pairs) + 1
    return "\n".join(f"{key + ':':<{width}} {printable(value)}".rstrip() for key, value in pairs)


def human_ms(ms: int) -> str:
    """A short duration: ``350ms``, ``12s``, ``3m04s``, ``2h05m``, ``3d04h``."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _word(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


def _state(session: types_pb2.Session) -> str:
    state = _word(types_pb2.SessionState.Name(session.state), "SESSION_STATE_")
    return f"{state}({session.exit_code})" if session.HasField("exit_code") else state


SESSION_HEADERS = ("NAME", "SERVER", "STATE", "PID", "SIZE", "TAGS", "IDLE")
SERVER_HEADERS = ("HOSTNAME", "ADDRESS", "HEALTH", "ROLE", "SESSIONS", "LATENCY", "ERROR")


def session_row(session: types_pb2.Session) -> list[str]:
    """One ``list`` table row."""
    return [
        session.name,
        session.server,
        _state(session),
        str(session.pid) if session.pid else "-",
        f"{session.rows}x{session.cols}",
        ",".join(session.tags) or "-",
        human_ms(session.last_activity_ms),
    ]


def _health(server: hub_pb2.Server) -> str:
    return _word(hub_pb2.ServerHealth.Name(server.health), "SERVER_HEALTH_")


def server_row(server: hub_pb2.Server) -> list[str]:
    """One ``servers`` table row."""
    is_local = server.role == hub_pb2.SERVER_ROLE_LOCAL
    return [
        server.hostname or "-",
        server.address,
        _health(server),
        _word(hub_pb2.ServerRole.Name(server.role), "SERVER_ROLE_"),
        str(server.session_count),
        "-" if is_local else f"{server.latency_ms:.1f}ms",
        server.last_error or "-",
    ]


def session_details(session: types_pb2.Session) -> str:
    """Every field of a session, one per line."""
    created = session.created_at.ToJsonString() if session.HasField("created_at") else "-"
    return format_details(
        [
            ("name", session.name),
            ("server", session.server),
            ("state", _state(session)),
            ("pid", str(session.pid)),
            ("size", f"{session.rows}x{session.cols}"),
            ("command", session.command),
            ("cwd", session.cwd or "-"),
            ("tags", ", ".join(session.tags) or "-"),
            ("generation", str(session.generation)),
            ("created", created),
            ("idle", human_ms(session.last_activity_ms)),
        ]
    )


def server_details(server: hub_pb2.Server) -> str:
    """Every field of a server, one per line."""
    row = server_row(server)
    return format_details(
        [*zip(map(str.lower, SERVER_HEADERS), row, strict=True), ("id", server.server_id)]
    )


def _sgr_colour(colour: types_pb2.Color, base: int) -> list[str]:
    # ``base`` is 30 for foreground, 40 for background; bright colours and the
    # extended forms sit at fixed offsets from it.
    which = colour.WhichOneof("value")
    if which == "indexed":
        index = colour.indexed
        if index < 8:
            return [str(base + index)]
        if index < 16:
            return [str(base + 60 + index - 8)]
        return [str(base + 8), "5", str(index)]
    if which == "rgb":
        rgb = colour.rgb
        return [str(base + 8), "2", str(rgb >> 16 & 0xFF), str(rgb >> 8 & 0xFF), str(rgb & 0xFF)]
    return []


_ATTRIBUTES = (
    ("bold", "1"),
    ("faint", "2"),
    ("italic", "3"),
    ("underline", "4"),
    ("blink", "5"),
    ("inverse", "7"),
    ("strikethrough", "9"),
)


def render_span(span: types_pb2.StyledSpan) -> str:
    """The span's text wrapped in ANSI SGR codes (none for default style)."""
    codes = [code for field, code in _ATTRIBUTES if getattr(span, field)]
    if span.HasField("fg"):
        codes += _sgr_colour(span.fg, 30)
    if span.HasField("bg"):
        codes += _sgr_colour(span.bg, 40)
    text = printable(span.text)
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


def render_lines(
    lines: Sequence[str], styled_lines: Sequence[types_pb2.StyledLine], colour: bool
) -> list[str]:
    """Lines to print, in colour from spans when asked and given; trailing blanks dropped."""
    if colour and styled_lines:
        # The server trims default-styled blanks, so a blank row has no spans.
        out = ["".join(render_span(span) for span in line.spans) for line in styled_lines]
        blank = [not line.spans for line in styled_lines]
    else:
        out = [printable(line) for line in lines]
        blank = [not line.strip() for line in lines]
    while blank and blank[-1]:
        blank.pop()
    return out[: len(blank)]


def to_dict(message: Message) -> dict[str, Any]:
    """Proto3 JSON form of ``message``, field names as in the proto, defaults included."""
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _print_json(value: object, *, compact: bool = False) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=None if compact else 2), flush=True)


def _colour(args: argparse.Namespace) -> bool:
    return bool(args.styled) and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _screen_format(args: argparse.Namespace) -> str:
    # Styled spans cost the server more to render; only ask when they will be
    # shown in colour or handed to a script.
    return "styled" if args.styled and (args.json or _colour(args)) else "plain"


def _print_screen(screen: types_pb2.Screen, args: argparse.Namespace) -> None:
    for line in render_lines(screen.lines, screen.styled_lines, _colour(args)):
        print(line)


def _print_idle(
    idle: types_pb2.Idle, args: argparse.Namespace, *, header: bool, compact: bool = False
) -> None:
    if args.json:
        _print_json(to_dict(idle), compact=compact)
        return
    if header:
        print(f"{printable(idle.server)}/{printable(idle.session)}  generation {idle.generation}")
    _print_screen(idle.screen, args)
    sys.stdout.flush()


def _show_session(session: types_pb2.Session, args: argparse.Namespace) -> int:
    if args.json:
        _print_json(to_dict(session))
    else:
        print(session_details(session))
    return 0


def _show_server(server: hub_pb2.Server, args: argparse.Namespace) -> int:
    if args.json:
        _print_json(to_dict(server))
    else:
        print(server_details(server))
    return 0


def _done(args: argparse.Namespace) -> int:
    # Scripts parsing --json output get a value even from calls returning nothing.
    if args.json:
        _print_json({})
    return 0


# --- Waiting -------------------------------------------------------------------


class Spinner:
    """A spinner with elapsed time on ``stream`` (stderr) while a call blocks.

    It only draws when the stream is a terminal, and erases itself on exit.
    """

    _FRAMES = "|/-\\"

    def __init__(self, message: str, stream: TextIO | None = None, interval: float = 0.1) -> None:
        self._message = message
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        if self._stream.isatty():
            self._thread = threading.Thread(target=self._spin, name="wsh-spinner", daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        start = time.monotonic()
        for frame in itertools.cycle(self._FRAMES):
            elapsed = int(time.monotonic() - start)
            self._stream.write(f"\r{frame} {self._message} ({elapsed}s)")
            self._stream.flush()
            if self._stop.wait(self._interval):
                return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._stream.write("\r\x1b[K")
        self._stream.flush()


# --- Commands --------------------------------------------------------------------


def _input_bytes(args: argparse.Namespace) -> bytes:
    if args.stdin:
        if args.text is not None:
            raise UsageError("give TEXT or --stdin, not both")
        return sys.stdin.buffer.read()
    if args.text is None:
        raise UsageError("give TEXT, or --stdin to read the input from standard input")
    if args.no_escapes:
        return _raw(args.text)
    try:
        return decode_escapes(args.text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _cmd_create(client: Client, args: argparse.Namespace) -> int:
    session = client.create_session(
        args.name,
        server=args.server,
        command=args.command,
        rows=args.rows,
        cols=args.cols,
        cwd=args.cwd,
        env=dict(args.env or ()),
        tags=args.tag or (),
    )
    return _show_session(session, args)


def _cmd_list(client: Client, args: argparse.Namespace) -> int:
    sessions = client.list_sessions(server=args.server, tags=args.tag or ())
    if args.json:
        _print_json([to_dict(session) for session in sessions])
    else:
        print(format_table(SESSION_HEADERS, map(session_row, sessions)))
    return 0


def _cmd_get(client: Client, args: argparse.Namespace) -> int:
    return _show_session(client.get_session(args.name, server=args.server), args)


def _cmd_send(client: Client, args: argparse.Namespace) -> int:
    sent = client.send_input(args.name, _input_bytes(args), server=args.server)
    if args.json:
        _print_json(to_dict(sent))
    return 0


def _cmd_screen(client: Client, args: argparse.Namespace) -> int:
    screen = client.get_screen(args.name, server=args.server, format=_screen_format(args))
    if args.json:
        _print_json(to_dict(screen))
    else:
        _print_screen(screen, args)
    return 0


def _cmd_scrollback(client: Client, args: argparse.Namespace) -> int:
    page = client.get_scrollback(
        args.name,
        server=args.server,
        offset=args.offset,
        limit=args.limit,
        format=_screen_format(args),
    )
    if args.json:
        _print_json(to_dict(page))
    else:
        for line in render_lines(page.lines, page.styled_lines, _colour(args)):
            print(line)
    return 0


def _cmd_idle(client: Client, args: argparse.Namespace) -> int:
    with Spinner(f"waiting for {args.name} to settle"):
        idle = client.await_idle(
            args.name,
            server=args.server,
            timeout_ms=args.timeout_ms,
            max_wait_ms=args.max_wait_ms,
            last_generation=args.last_generation,
            fresh=args.fresh,
            format=_screen_format(args),
        )
    _print_idle(idle, args, header=False)
    return 0


def _cmd_race(client: Client, args: argparse.Namespace) -> int:
    stream = client.race_idle(
        tags=args.tag or (),
        server=args.server,
        timeout_ms=args.timeout_ms,
        max_wait_ms=args.max_wait_ms,
        last_session=args.last_session,
        last_server=args.last_server,
        last_generation=args.last_generation,
        fresh=args.fresh,
        format=_screen_format(args),
    )
    shown = 0
    with stream:
        while True:
            try:
                with Spinner("waiting for a session to settle"):
                    idle = next(stream, None)
            except WshRpcError as exc:
                # With --all the stream ends by running out of max-wait once
                # nothing new settles: that is the normal end, not a failure.
                if shown and exc.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return 0
                raise
            if idle is None:
                return 0
            if shown and not args.json:
                print()
            # One JSON object per line, so a consumer can act on each as it comes.
            _print_idle(idle, args, header=True, compact=args.all)
            shown += 1
            if not args.all:
                return 0


def _cmd_run(client: Client, args: argparse.Namespace) -> int:
    data = _input_bytes(args)
    with Spinner(f"running in {args.name}"):
        idle = client.run(
            args.name,
            data,
            args.timeout_ms,
            server=args.server,
            max_wait_ms=args.max_wait_ms,
            format=_screen_format(args),
        )
    _print_idle(idle, args, header=False)
    return 0


def _cmd_kill(client: Client, args: argparse.Namespace) -> int:
    client.kill_session(args.name, server=args.server)
    return _done(args)


def _cmd_rename(client: Client, args: argparse.Namespace) -> int:
    return _show_session(
        client.update_session(args.name, server=args.server, new_name=args.new_name), args
    )


def _cmd_tag(client: Client, args: argparse.Namespace) -> int:
    if not (args.add or args.remove):
        raise UsageError("tag: give --add TAG and/or --remove TAG")
    session = client.update_session(
        args.name, server=args.server, add_tags=args.add or (), remove_tags=args.remove or ()
    )
    return _show_session(session, args)


def _cmd_resize(client: Client, args: argparse.Namespace) -> int:
    session = client.resize_session(args.name, args.rows, args.cols, server=args.server)
    return _show_session(session, args)


def _cmd_servers_list(client: Client, args: argparse.Namespace) -> int:
    servers = client.list_servers()
    if args.json:
        _print_json([to_dict(server) for server in servers])
    else:
        print(format_table(SERVER_HEADERS, map(server_row, servers)))
    return 0


def _cmd_servers_get(client: Client, args: argparse.Namespace) -> int:
    return _show_server(client.get_server(args.hostname), args)


def _cmd_servers_add(client: Client, args: argparse.Namespace) -> int:
    wait = not args.no_wait
    with Spinner(f"connecting to {args.address}") if wait else contextlib.nullcontext():
        server = client.add_server(
            args.address,
            token=args.backend_token,
            wait=wait,
            wait_timeout_ms=args.wait_timeout_ms,
        )
    _show_server(server, args)
    if wait and server.health != hub_pb2.SERVER_HEALTH_HEALTHY:
        problem = f": {server.last_error}" if server.last_error else ""
        _error(f"{printable(args.address)} is {_health(server)}{printable(problem)}")
        return 1
    return 0


def _cmd_servers_remove(client: Client, args: argparse.Namespace) -> int:
    target: str = args.host_or_address
    if "://" in target:
        client.remove_server(address=target)
    else:
        client.remove_server(target)
    return _done(args)


def _cmd_servers_reload(client: Client, args: argparse.Namespace) -> int:
    result = client.reload_config()
    if args.json:
        _print_json(to_dict(result))
        return 0
    changes = [
        (verb, address)
        for verb, addresses in (
            ("added", result.added),
            ("removed", result.removed),
            ("updated", result.updated),
        )
        for address in addresses
    ]
    print(format_table(("CHANGE", "ADDRESS"), changes) if changes else "no changes")
    for warning in result.warnings:
        print(f"wsh: warning: {printable(warning)}", file=sys.stderr)
    return 0


def _cmd_info(client: Client, args: argparse.Namespace) -> int:
    info = client.get_server_info()
    if args.json:
        _print_json(to_dict(info))
        return 0
    uptime_ms = info.uptime.ToMilliseconds() if info.HasField("uptime") else 0
    started = info.started_at.ToJsonString() if info.HasField("started_at") else "-"
    print(
        format_details(
            [
                ("hostname", info.hostname),
                ("server_id", info.server_id),
                ("version", info.version),
                ("uptime", human_ms(uptime_ms)),
                ("started", started),
            ]
        )
    )
    return 0


# --- Parser --------------------------------------------------------------------


def _uint(bits: int) -> Callable[[str], int]:
    limit = 2**bits - 1

    def parse(text: str) -> int:
        value = int(text)
        if not 0 <= value <= limit:
            raise argparse.ArgumentTypeError(f"must be between 0 and {limit}")
        return value

    # argparse names the type in its error messages.
    parse.__name__ = "integer"
    return parse


_uint32 = _uint(32)
_uint64 = _uint(64)


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _global_options(*, nested: bool, token: bool = True) -> argparse.ArgumentParser:
    """Connection and output options, accepted before and after the command name.

    On subcommands the defaults are SUPPRESS so that a value given before the
    command is not overwritten by the subcommand's default.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection and output")

    def default(value: object) -> object:
        return argparse.SUPPRESS if nested else value

    group.add_argument(
        "--addr",
        default=default(None),
        help=f"server address: host:port, http://... or https://... "
        f"(default: $WSH_ADDR, else {DEFAULT_ADDR})",
    )
    if token:
        group.add_argument(
            "--token",
            default=default(None),
            help="bearer token (default: $WSH_TOKEN, which unlike an argument "
            "is not visible to other users in the process list)",
        )
    group.add_argument("--ca-file", default=default(None), help="PEM CA bundle; implies TLS")
    group.add_argument("--client-cert", default=default(None), help="PEM client certificate (mTLS)")
    group.add_argument("--client-key", default=default(None), help="PEM client key (mTLS)")
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON for scripts"
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=default(None),
        metavar="SECONDS",
        help="deadline of each call (default: none)",
    )
    return parser


def _add_server_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--server", default="", metavar="HOST", help=help)


def _add_session(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="session name")
    _add_server_option(parser, "hostname of the server owning the session (default: this one)")


def _add_styled(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--styled", action="store_true", help="colours and attributes (on a terminal or in JSON)"
    )


def _add_idle_options(parser: argparse.ArgumentParser, *, full: bool) -> None:
    parser.add_argument(
        "--timeout-ms",
        type=_uint32,
        default=DEFAULT_IDLE_MS,
        help="quiet time that counts as settled (default: %(default)s)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=_uint32,
        default=0,
        help="give up after this long (default: the server's, 30000)",
    )
    if full:
        parser.add_argument(
            "--last-generation",
            type=_uint64,
            help="generation already seen: wait for newer activity first",
        )
        parser.add_argument(
            "--fresh", action="store_true", help="always wait a full --timeout-ms of silence"
        )
    _add_styled(parser)


def _add_text(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "text",
        metavar="TEXT",
        nargs="?",
        help=r"input; escapes \n \r \t \e \\ \0 \xNN \uNNNN (\n is Enter, \x03 is Ctrl-C)",
    )
    parser.add_argument("--no-escapes", action="store_true", help="send TEXT verbatim")
    parser.add_argument("--stdin", action="store_true", help="send standard input's bytes")


def build_parser() -> argparse.ArgumentParser:
    """The ``wsh`` argument parser (``wsh server`` is dispatched before it)."""
    parser = argparse.ArgumentParser(
        prog="wsh",
        description="Terminal sessions on real PTYs, for agents and people.",
        epilog="Start a server with `wsh server` (see `wsh server --help`).",
        parents=[_global_options(nested=False)],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shared = [_global_options(nested=True)]

    def command(name: str, handler: _Handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=shared)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("create", _cmd_create, "start a session")
    sub.add_argument("name", metavar="NAME", nargs="?", default="", help="default: server picks")
    _add_server_option(sub, "hostname of the server to run it on (default: this one)")
    sub.add_argument("--command", default="", help="command line (default: a login shell)")
    sub.add_argument("--rows", type=_uint32, default=0, help="default: 24")
    sub.add_argument("--cols", type=_uint32, default=0, help="default: 80")
    sub.add_argument("--cwd", default="", help="working directory (default: home)")
    sub.add_argument(
        "--env", type=_env_pair, action="append", metavar="K=V", help="environment (repeatable)"
    )
    sub.add_argument("--tag", action="append", metavar="T", help="tag (repeatable)")

    sub = command("list", _cmd_list, "list sessions")
    sub.add_argument("--tag", action="append", metavar="T", help="having any of these tags")
    _add_server_option(sub, "only this server's sessions (default: whole cluster)")

    _add_session(command("get", _cmd_get, "show one session"))

    sub = command("send", _cmd_send, "type input into a session")
    _add_session(sub)
    _add_text(sub)

    sub = command("screen", _cmd_screen, "print the visible screen")
    _add_session(sub)
    _add_styled(sub)

    sub = command("scrollback", _cmd_scrollback, "print scrollback and screen lines")
    _add_session(sub)
    sub.add_argument("--offset", type=_uint64, default=0, help="first line (0 = oldest)")
    sub.add_argument("--limit", type=_uint32, default=0, help="lines (default: 100)")
    _add_styled(sub)

    sub = command("idle", _cmd_idle, "wait until a session settles, then print its screen")
    _add_session(sub)
    _add_idle_options(sub, full=True)

    sub = command("race", _cmd_race, "print the first session to settle")
    sub.add_argument("--tag", action="append", metavar="T", help="sessions having any of these")
    _add_server_option(sub, "only this server's sessions (default: whole cluster)")
    _add_idle_options(sub, full=True)
    sub.add_argument(
        "--last-session", default="", help="skip it until it moves past --last-generation"
    )
    sub.add_argument("--last-server", default="", help="server of --last-session")
    sub.add_argument("--all", action="store_true", help="keep printing sessions as they settle")

    sub = command("run", _cmd_run, "send input, wait until settled, print the screen")
    _add_session(sub)
    _add_text(sub)
    _add_idle_options(sub, full=False)

    _add_session(command("kill", _cmd_kill, "end a session"))

    sub = command("rename", _cmd_rename, "rename a session")
    _add_session(sub)
    sub.add_argument("new_name", metavar="NEW", help="new name")

    sub = command("tag", _cmd_tag, "add or remove tags")
    _add_session(sub)
    sub.add_argument("--add", action="append", metavar="T", help="tag to add (repeatable)")
    sub.add_argument("--remove", action="append", metavar="T", help="tag to remove (repeatable)")

    sub = command("resize", _cmd_resize, "change a session's size")
    _add_session(sub)
    sub.add_argument("rows", metavar="ROWS", type=_uint32)
    sub.add_argument("cols", metavar="COLS", type=_uint32)

    servers = command("servers", _cmd_servers_list, "list and manage the cluster's servers")
    actions = servers.add_subparsers(dest="servers_command", metavar="ACTION")
    # The backend's own --token must not collide with the one for this server.
    nested = [_global_options(nested=True, token=False)]

    def action(name: str, handler: _Handler, help: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help, description=help, parents=nested)
        sub.set_defaults(handler=handler)
        return sub

    action("list", _cmd_servers_list, "list servers (the default)")
    action("get", _cmd_servers_get, "show one server").add_argument("hostname", metavar="HOST")
    sub = action("add", _cmd_servers_add, "register a backend and wait until it is healthy")
    sub.add_argument("address", metavar="ADDRESS", help="http[s]://host:port[/prefix]")
    sub.add_argument("--token", dest="backend_token", help="the backend's bearer token")
    sub.add_argument("--no-wait", action="store_true", help="return at once (CONNECTING)")
    sub.add_argument(
        "--wait-timeout-ms", type=_uint32, default=0, help="how long to wait (default: 10000)"
    )
    sub = action("remove", _cmd_servers_remove, "deregister a backend")
    sub.add_argument(
        "host_or_address",
        metavar="HOST_OR_ADDRESS",
        help="hostname, or the address while the hostname is unknown",
    )
    action("reload", _cmd_servers_reload, "reload backends from the config file")

    command("info", _cmd_info, "show this server's identity")
    return parser


# --- Entry point ---------------------------------------------------------------


def _error(message: str) -> None:
    print(f"wsh: error: {message}", file=sys.stderr)


def _report(exc: WshRpcError, addr: str) -> None:
    if exc.code == grpc.StatusCode.UNAVAILABLE and not exc.reason:
        _error(f"UNAVAILABLE: cannot reach a wsh server at {addr}: {exc.message}")
        print(
            "hint: start one with `wsh server`, or point --addr (or WSH_ADDR) at a running one",
            file=sys.stderr,
        )
        return
    _error(printable(str(exc)))
    if exc.code == grpc.StatusCode.UNAUTHENTICATED:
        print("hint: pass the server's token with --token or WSH_TOKEN", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wsh`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["server"]:
        # Imported here so that client commands never load the server's stack.
        from wsh.server import main as server_main

        return server_main(argv[1:])
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse exits on --help and on usage errors
            return exc.code if isinstance(exc.code, int) else 0
        try:
            client = Client(
                args.addr,
                token=args.token,
                ca_file=args.ca_file,
                client_cert=args.client_cert,
                client_key=args.client_key,
                timeout=args.timeout,
            )
        except ValueError as exc:
            _error(str(exc))
            return 2
        except OSError as exc:
            _error(f"cannot read {exc.filename}: {exc.strerror}")
            return 1
        with client:
            try:
                handler: _Handler = args.handler
                return handler(client, args)
            except UsageError as exc:
                _error(str(exc))
                return 2
            except WshRpcError as exc:
                _report(exc, client.addr)
                return 1
    except KeyboardInterrupt:
        return 130
