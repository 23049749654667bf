"""The ``wsh`` command: terminal sessions from the shell, over :mod:`wsh.client`.

``wsh server ...`` runs a server (see ``wsh server --help``); every other
command is a client call. Output is aligned text for people, or JSON with
``--json`` for scripts (:class:`Output` is the one place that chooses). Each
kind of failure has its own exit status (:data:`EXIT_STATUSES`).
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
from typing import Any, Self, TextIO, cast

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from wsh import __version__
from wsh.client import DEFAULT_IDLE_MS, Client, WshRpcError
from wsh.defaults import DEFAULT_ADDR
from wsh.v1 import hub_pb2, types_pb2

_Handler = Callable[[Client, argparse.Namespace], int]


# --- Exit statuses -------------------------------------------------------------

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4
EXIT_UNAVAILABLE = 5
EXIT_AUTH = 6
EXIT_NOT_HEALTHY = 7
EXIT_REJECTED = 8
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
# 128 + SIGPIPE: what a shell reports for `cat`, `yes`... whose reader went
# away, so `set -o pipefail` scripts see wsh like any other tool. (Python
# ignores SIGPIPE and raises BrokenPipeError instead; its docs warn against
# restoring SIG_DFL, which would also kill wsh on a broken gRPC socket.)
EXIT_BROKEN_PIPE = 141

EXIT_STATUSES = (
    (EXIT_OK, "success"),
    (EXIT_ERROR, "any other failure"),
    (EXIT_USAGE, "usage error: bad arguments"),
    (EXIT_NOT_FOUND, "not found: NOT_FOUND (no such session or server)"),
    (EXIT_TIMEOUT, "timed out: IDLE_TIMEOUT (--max-wait-ms), DEADLINE_EXCEEDED (--deadline-s)"),
    (EXIT_UNAVAILABLE, "unavailable: server unreachable, SERVER_UNAVAILABLE (a backend down)"),
    (EXIT_AUTH, "not allowed: UNAUTHENTICATED, PERMISSION_DENIED"),
    (EXIT_NOT_HEALTHY, "servers add: registered but not healthy yet; the hub keeps retrying"),
    (EXIT_REJECTED, "servers add: the backend was rejected (self loop, hostname taken)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_BROKEN_PIPE, "standard output closed early (piped into head...)"),
)

_CODE_EXITS = {
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_TIMEOUT,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
}
# Reasons first: they are the stable contract, whatever code carries them.
_REASON_EXITS = {"IDLE_TIMEOUT": EXIT_TIMEOUT, "SERVER_UNAVAILABLE": EXIT_UNAVAILABLE}


def exit_status(exc: WshRpcError) -> int:
    """The exit status for a failed call."""
    return _REASON_EXITS.get(exc.reason) or _CODE_EXITS.get(exc.code, EXIT_ERROR)


class Failure(Exception):
    """A command that failed, as reported to the user: text or a JSON object.

    ``code`` is a gRPC status code name, ``reason`` the ErrorInfo reason (or
    one of the CLI's own: ``USAGE``, ``FILE_UNREADABLE``, ``SERVER_NOT_HEALTHY``,
    ``SERVER_REJECTED``); ``hint`` is a next step for a person.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        reason: str = "",
        metadata: dict[str, str] | None = None,
        hint: str = "",
        exit_status: int = EXIT_ERROR,
        labelled: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.hint = hint
        self.exit_status = exit_status
        self._labelled = labelled

    def text(self) -> str:
        """The ``wsh: error:`` line for a person, reason first when there is one."""
        label = f"{self.reason or self.code}: " if self._labelled else ""
        return f"wsh: error: {printable(label + self.message)}"

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "metadata": self.metadata,
        }
        if self.hint:
            data["hint"] = self.hint
        return data


class UsageError(Failure):
    """A command line that parses but makes no sense; exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            code="INVALID_ARGUMENT",
            reason="USAGE",
            exit_status=EXIT_USAGE,
            labelled=False,
        )


def rpc_failure(exc: WshRpcError, addr: str) -> Failure:
    """How a failed call is reported, with a hint where the fix is known."""
    if exc.code == grpc.StatusCode.UNAVAILABLE and not exc.reason:
        return Failure(
            f"cannot reach a wsh server at {addr}: {exc.message}",
            code=exc.code.name,
            hint="start one with `wsh server`, or point --addr (or WSH_ADDR) at a running one",
            exit_status=EXIT_UNAVAILABLE,
        )
    hint = ""
    if exc.code == grpc.StatusCode.UNAUTHENTICATED:
        hint = "pass the server's token with --token or WSH_TOKEN"
    return Failure(
        exc.message,
        code=exc.code.name,
        reason=exc.reason,
        metadata=exc.metadata,
        hint=hint,
        exit_status=exit_status(exc),
    )


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


def one_line(text: str, limit: int = 60) -> str:
    """``text`` on one printable line of at most ``limit`` characters, ``…`` where cut."""
    flat = " ".join(printable(text.replace("\n", " ").replace("\r", " ")).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


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


def _latency(server: hub_pb2.Server) -> str:
    # Only a healthy backend's last heartbeat says anything about now; 0 means
    # none was measured yet.
    measured = server.health == hub_pb2.SERVER_HEALTH_HEALTHY and server.latency_ms > 0
    local = server.role == hub_pb2.SERVER_ROLE_LOCAL
    return f"{server.latency_ms:.1f}ms" if measured and not local else "-"


def server_row(server: hub_pb2.Server) -> list[str]:
    """One ``servers`` table row; the error is shortened to one line."""
    return [
        server.hostname or "-",
        server.address,
        _health(server),
        _word(hub_pb2.ServerRole.Name(server.role), "SERVER_ROLE_"),
        str(server.session_count),
        _latency(server),
        one_line(server.last_error) or "-",
    ]


def server_label(server: hub_pb2.Server) -> str:
    """``hostname (address)``, or the address while the hostname is unknown."""
    return f"{server.hostname} ({server.address})" if server.hostname else server.address


# gRPC's connection errors run to ~130 characters with the cause at the end
# ("... Failed to connect to remote host: Connection refused"): a message line
# keeps it, a table cell or the spinner line (one terminal row) cannot.
MESSAGE_ERROR_CHARS = 160


def server_status(server: hub_pb2.Server, limit: int = 60) -> str:
    """``unavailable: connection refused``: health and the last error, cut to ``limit``."""
    error = one_line(server.last_error, limit)
    return f"{_health(server)}: {error}" if error else _health(server)


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
    row = server_row(server)[:-1]
    return format_details(
        [
            *zip(map(str.lower, SERVER_HEADERS), row, strict=False),
            ("error", printable(server.last_error) or "-"),
            ("id", server.server_id),
        ]
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


_INT64 = frozenset({FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64})


def _int(value: object) -> object:
    return int(value) if isinstance(value, str) else value


def _numbers(descriptor: Descriptor, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (``descriptor``'s JSON form) with 64-bit integers as JSON numbers.

    Proto3's JSON mapping writes them as strings because JavaScript's numbers
    lose precision past 2**53; every field here (generations, byte counts,
    milliseconds) stays far below that, and a number is what a script expects.
    Well-known types keep their own JSON forms (a Timestamp is a string).
    """
    for name, value in data.items():
        field = descriptor.fields_by_name.get(name)
        if field is None:
            continue
        repeated = isinstance(value, list)
        if field.cpp_type in _INT64:
            data[name] = [_int(v) for v in value] if repeated else _int(value)
            continue
        sub = field.message_type
        if sub is None or sub.full_name.startswith("google.protobuf."):
            continue
        if sub.GetOptions().map_entry:
            entry = sub.fields_by_name["value"]
            if entry.cpp_type in _INT64:
                data[name] = {k: _int(v) for k, v in value.items()}
            elif entry.message_type is not None:
                for item in value.values():
                    _numbers(entry.message_type, item)
        elif repeated:
            for item in value:
                _numbers(sub, item)
        else:
            _numbers(sub, value)
    return data


def to_dict(message: Message) -> dict[str, Any]:
    """JSON form of ``message``: proto field names, defaults included, 64-bit ints as numbers."""
    data = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _numbers(cast(Descriptor, message.DESCRIPTOR), data)


class Output:
    """Where results, warnings and errors go: the one place choosing text or JSON.

    Text: results on stdout for people, warnings and errors as ``wsh:`` lines
    on stderr. JSON: each result is one JSON document on stdout (one line
    each when ``compact``, as ``race --all`` streams them), warnings are left
    to the result document, and a failure is one JSON object on stderr.
    """

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode

    def result(
        self, data: Message | object, text: str | Sequence[str] | None, *, compact: bool = False
    ) -> None:
        """Print a result: ``data`` as JSON, or ``text`` (a string, or lines)."""
        if self.json:
            value = to_dict(data) if isinstance(data, Message) else data
            print(json.dumps(value, ensure_ascii=False, indent=None if compact else 2))
        elif isinstance(text, str):
            print(text)
        elif text is not None:
            for line in text:
                print(line)
        # Streams (race --all) must reach a reader as each result comes.
        sys.stdout.flush()

    def warning(self, text: str) -> None:
        """Something a person should know; in JSON mode the result carries it."""
        if not self.json:
            print(f"wsh: warning: {printable(text)}", file=sys.stderr)

    def error(self, failure: Failure) -> None:
        if self.json:
            print(json.dumps(failure.to_json(), ensure_ascii=False), file=sys.stderr)
            return
        print(failure.text(), file=sys.stderr)
        for line in failure.hint.splitlines():
            print(f"hint: {printable(line)}", file=sys.stderr)


def _out(args: argparse.Namespace) -> Output:
    out: Output = args.output
    return out


def _colour(args: argparse.Namespace) -> bool:
    return bool(args.styled) and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _screen_format(args: argparse.Namespace) -> str:
    # Styled spans cost the server more to render; only ask when they will be
    # shown in colour or handed to a script.
    return "styled" if args.styled and (_out(args).json or _colour(args)) else "plain"


def _screen_lines(screen: types_pb2.Screen, args: argparse.Namespace) -> list[str]:
    return render_lines(screen.lines, screen.styled_lines, _colour(args))


def _print_idle(
    idle: types_pb2.Idle,
    args: argparse.Namespace,
    *,
    header: bool,
    compact: bool = False,
    gap: bool = False,
) -> None:
    lines = _screen_lines(idle.screen, args)
    exited = f"  exited {idle.exit_code}" if idle.HasField("exit_code") else ""
    if header:
        title = (
            f"{printable(idle.server)}/{printable(idle.session)}  "
            f"generation {idle.generation}{exited}"
        )
        lines[:0] = ["", title] if gap else [title]
    elif exited:
        lines.append(f"[{printable(idle.session)}{exited}]")
    _out(args).result(idle, lines, compact=compact)


def _show_session(session: types_pb2.Session, args: argparse.Namespace) -> int:
    _out(args).result(session, session_details(session))
    return EXIT_OK


def _done(args: argparse.Namespace) -> int:
    # Scripts parsing --json output get a value even from calls returning nothing.
    _out(args).result({}, None)
    return EXIT_OK


# --- Waiting -------------------------------------------------------------------


class Spinner:
    """A spinner with elapsed time on ``stream`` (stderr) while a call blocks.

    It only draws when the stream is a terminal, and erases itself on exit.
    ``status``, when given, is called from the spinner's thread every
    ``status_interval`` seconds and its answer shown after the message; it
    must not raise.
    """

    _FRAMES = "|/-\\"

    def __init__(
        self,
        message: str,
        stream: TextIO | None = None,
        interval: float = 0.1,
        *,
        status: Callable[[], str] | None = None,
        status_interval: float = 0.2,
    ) -> None:
        self._message = message
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._status = status
        self._status_interval = status_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        if self._stream.isatty():
            self._thread = threading.Thread(target=self._spin, name="wsh-spinner", daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        start = time.monotonic()
        detail = ""
        polled = -self._status_interval
        for frame in itertools.cycle(self._FRAMES):
            now = time.monotonic() - start
            if self._status is not None and now - polled >= self._status_interval:
                polled = now
                detail = self._status()
            line = f"{frame} {self._message} ({int(now)}s)" + (f": {detail}" if detail else "")
            # Erase to the end of the line: the status may have got shorter.
            self._stream.write(f"\r{line}\x1b[K")
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
    response = client.list_sessions_response(server=args.server, tags=args.tag or ())
    out = _out(args)
    # JSON: the response as it is, {"sessions": [...], "missing_servers": [...]}.
    out.result(response, format_table(SESSION_HEADERS, map(session_row, response.sessions)))
    for server in response.missing_servers:
        status = server_status(server, MESSAGE_ERROR_CHARS)
        out.warning(f"sessions of {server_label(server)} not listed: {status}")
    return EXIT_OK


def _cmd_get(client: Client, args: argparse.Namespace) -> int:
    return _show_session(client.get_session(args.name, server=args.server), args)


def _cmd_send(client: Client, args: argparse.Namespace) -> int:
    sent = client.send_input(args.name, _input_bytes(args), server=args.server)
    _out(args).result(sent, None)
    return EXIT_OK


def _cmd_screen(client: Client, args: argparse.Namespace) -> int:
    screen = client.get_screen(args.name, server=args.server, format=_screen_format(args))
    _out(args).result(screen, _screen_lines(screen, args))
    return EXIT_OK


def _cmd_scrollback(client: Client, args: argparse.Namespace) -> int:
    page = client.get_scrollback(
        args.name,
        server=args.server,
        offset=args.offset,
        limit=args.limit,
        format=_screen_format(args),
    )
    _out(args).result(page, render_lines(page.lines, page.styled_lines, _colour(args)))
    return EXIT_OK


def _cmd_idle(client: Client, args: argparse.Namespace) -> int:
    with Spinner(f"waiting for {args.name} to settle"):
        idle = client.await_idle(
            args.name,
            server=args.server,
            timeout_ms=args.quiet_ms,
            max_wait_ms=args.max_wait_ms,
            last_generation=args.last_generation,
            fresh=args.fresh,
            format=_screen_format(args),
        )
    _print_idle(idle, args, header=False)
    return EXIT_OK


def _cmd_race(client: Client, args: argparse.Namespace) -> int:
    stream = client.race_idle(
        tags=args.tag or (),
        server=args.server,
        timeout_ms=args.quiet_ms,
        max_wait_ms=args.max_wait_ms,
        last_session=args.last_session,
        last_server=args.last_server,
        last_generation=args.last_generation,
        fresh=args.fresh,
        format=_screen_format(args),
    )
    shown = 0
    streaming = args.all or args.count > 0
    settled: set[tuple[str, str]] = set()
    with stream:
        while True:
            try:
                with Spinner("waiting for a session to settle"):
                    idle = next(stream, None)
            except WshRpcError as exc:
                # With --all the stream ends by running out of max-wait once
                # nothing new settles: that is the normal end, not a failure.
                if shown and exc.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return EXIT_OK
                raise
            if idle is None:
                return EXIT_OK
            # One JSON object per line, so a consumer can act on each as it comes.
            _print_idle(idle, args, header=True, compact=streaming, gap=shown > 0)
            shown += 1
            settled.add((idle.server, idle.session))
            if not streaming or len(settled) == args.count:
                return EXIT_OK


def _cmd_run(client: Client, args: argparse.Namespace) -> int:
    data = _input_bytes(args)
    with Spinner(f"running in {args.name}"):
        idle = client.run(
            args.name,
            data,
            args.quiet_ms,
            server=args.server,
            max_wait_ms=args.max_wait_ms,
            format=_screen_format(args),
        )
    _print_idle(idle, args, header=False)
    return EXIT_OK


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
    text = format_table(SERVER_HEADERS, map(server_row, servers))
    _out(args).result([to_dict(server) for server in servers], text)
    return EXIT_OK


def _cmd_servers_get(client: Client, args: argparse.Namespace) -> int:
    server = client.get_server(args.hostname)
    _out(args).result(server, server_details(server))
    return EXIT_OK


def find_server(servers: Iterable[hub_pb2.Server], address: str) -> hub_pb2.Server | None:
    """The registered server at ``address`` (a trailing ``/`` aside)."""
    wanted = address.rstrip("/")
    return next((s for s in servers if s.address.rstrip("/") == wanted), None)


def _add_progress(client: Client, address: str) -> Callable[[], str]:
    """What the spinner of ``servers add`` shows: the backend's health as the hub sees it."""

    def status() -> str:
        try:
            # Short: a slow answer only delays the next spinner frame.
            server = find_server(client.list_servers(timeout=2.0), address)
        except WshRpcError:
            return ""
        return server_status(server) if server is not None else "registering"

    return status


def _remove_hint(server: hub_pb2.Server) -> str:
    # By address: a rejected backend may carry a hostname that is not its own
    # (a self loop has the hub's), which `remove HOST` would refuse.
    return f"to remove it: wsh servers remove {server.address}"


def _already_registered(client: Client, exc: WshRpcError, address: str) -> Failure:
    failure = rpc_failure(exc, client.addr)
    registered = exc.metadata.get("address") or address
    try:
        server = find_server(client.list_servers(), registered)
    except WshRpcError:
        server = None
    if server is None:
        return failure
    status = server_status(server, MESSAGE_ERROR_CHARS)
    failure.message = f"{server_label(server)} is already registered; it is {status}"
    failure.metadata.update(health=_health(server), last_error=server.last_error)
    failure.hint = f"`wsh servers` shows its state; {_remove_hint(server)}"
    return failure


def _not_healthy(server: hub_pb2.Server, waited_ms: int) -> Failure:
    metadata = {
        "address": server.address,
        "health": _health(server),
        "last_error": server.last_error,
    }
    if server.health == hub_pb2.SERVER_HEALTH_REJECTED:
        return Failure(
            f"{server_label(server)} was rejected: {server.last_error or 'no reason given'}",
            code="FAILED_PRECONDITION",
            reason="SERVER_REJECTED",
            metadata=metadata,
            hint="the hub will not retry it, nor save it in its config file, but lists it "
            f"until removed;\n{_remove_hint(server)}",
            exit_status=EXIT_REJECTED,
            labelled=False,
        )
    return Failure(
        f"{server_label(server)} is not healthy after {human_ms(waited_ms)}: "
        f"{server_status(server, MESSAGE_ERROR_CHARS)}",
        code="UNAVAILABLE",
        reason="SERVER_NOT_HEALTHY",
        metadata=metadata,
        hint="it IS registered and saved in the hub's config file: the hub keeps retrying in "
        f"the background and `wsh servers` shows its health;\n{_remove_hint(server)}",
        exit_status=EXIT_NOT_HEALTHY,
        labelled=False,
    )


# The hub's default and cap for AddServer's wait_timeout_ms.
_ADD_WAIT_DEFAULT_MS = 10_000
_ADD_WAIT_CAP_MS = 120_000


def _cmd_servers_add(client: Client, args: argparse.Namespace) -> int:
    wait = not args.no_wait
    waiting = (
        Spinner(f"adding {args.address}", status=_add_progress(client, args.address))
        if wait
        else contextlib.nullcontext()
    )
    try:
        with waiting:
            server = client.add_server(
                args.address,
                token=args.backend_token,
                wait=wait,
                wait_timeout_ms=args.wait_timeout_ms,
            )
    except WshRpcError as exc:
        if exc.reason == "SERVER_ALREADY_REGISTERED":
            raise _already_registered(client, exc, args.address) from None
        raise
    _out(args).result(server, server_details(server))
    if wait and server.health != hub_pb2.SERVER_HEALTH_HEALTHY:
        waited = min(args.wait_timeout_ms or _ADD_WAIT_DEFAULT_MS, _ADD_WAIT_CAP_MS)
        raise _not_healthy(server, waited)
    return EXIT_OK


def _cmd_servers_remove(client: Client, args: argparse.Namespace) -> int:
    target: str = args.host_or_address
    if "://" in target:
        client.remove_server(address=target)
    else:
        client.remove_server(target)
    return _done(args)


def _cmd_servers_reload(client: Client, args: argparse.Namespace) -> int:
    result = client.reload_config()
    changes = [
        (verb, address)
        for verb, addresses in (
            ("added", result.added),
            ("removed", result.removed),
            ("updated", result.updated),
        )
        for address in addresses
    ]
    out = _out(args)
    out.result(result, format_table(("CHANGE", "ADDRESS"), changes) if changes else "no changes")
    for warning in result.warnings:
        out.warning(warning)
    return EXIT_OK


def _cmd_info(client: Client, args: argparse.Namespace) -> int:
    info = client.get_server_info()
    uptime_ms = info.uptime.ToMilliseconds() if info.HasField("uptime") else 0
    started = info.started_at.ToJsonString() if info.HasField("started_at") else "-"
    text = format_details(
        [
            ("hostname", info.hostname),
            ("server_id", info.server_id),
            ("version", info.version),
            ("uptime", human_ms(uptime_ms)),
            ("started", started),
        ]
    )
    _out(args).result(info, text)
    return EXIT_OK


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


class _Renamed(argparse.Action):
    """An old option name: hidden from --help, still works, says its new name on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new_name: str, **kw: Any):
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)
        self.new_name = new_name

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"wsh: warning: {option_string} is deprecated, use {self.new_name}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _renamed(parser: argparse._ActionsContainer, old: str, new: str, **kw: Any) -> None:
    # SUPPRESS: the new option's default must win when the old one is absent.
    parser.add_argument(old, action=_Renamed, new_name=new, default=argparse.SUPPRESS, **kw)


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
        "--json",
        action="store_true",
        default=default(False),
        help="results as JSON on stdout, a failure as one JSON object on stderr",
    )
    group.add_argument(
        "--deadline-s",
        type=_seconds,
        default=default(None),
        metavar="SECONDS",
        help="client-side deadline of each call: past it the call is cancelled, "
        "DEADLINE_EXCEEDED (default: none)",
    )
    _renamed(group, "--timeout", "--deadline-s", type=_seconds, dest="deadline_s")
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


IDLE_EPILOG = """\
"Idle" means the session printed nothing for --quiet-ms milliseconds. It does
not mean the program finished: one that is silent for longer (a `sleep 3`, a
slow build step) looks idle too; raise --quiet-ms for it.

Bounds:
  --quiet-ms MS      the silence that counts as idle (default 500)
  --max-wait-ms MS   the server gives up when no idle moment came within this:
                     IDLE_TIMEOUT, exit status 4 (default: the server's, 30000;
                     at most 300000)
  --deadline-s S     this command gives up after S seconds whatever the server
                     does: DEADLINE_EXCEEDED, exit status 4 (default: none);
                     keep it above --max-wait-ms to see the server's answer
"""


def _add_idle_options(parser: argparse.ArgumentParser, *, full: bool) -> None:
    parser.add_argument(
        "--quiet-ms",
        type=_uint32,
        default=DEFAULT_IDLE_MS,
        metavar="MS",
        help="idle means no output for this long (default: %(default)s)",
    )
    _renamed(parser, "--timeout-ms", "--quiet-ms", type=_uint32, dest="quiet_ms")
    parser.add_argument(
        "--max-wait-ms",
        type=_uint32,
        default=0,
        metavar="MS",
        help="fail with IDLE_TIMEOUT if not idle within this long (default: the server's, 30000)",
    )
    if full:
        parser.add_argument(
            "--last-generation",
            type=_uint64,
            help="generation already seen: wait for newer activity first",
        )
        parser.add_argument(
            "--fresh", action="store_true", help="always wait a full --quiet-ms of silence"
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


def _main_epilog() -> str:
    statuses = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_STATUSES)
    return f"""\
exit status:
{statuses}

With --json, a result is JSON on stdout and a failure one JSON object on stderr:
  {{"code": "NOT_FOUND", "reason": "SESSION_NOT_FOUND", "message": "...", "metadata": {{...}}}}
(plus "hint" when there is one); usage errors (2) are argparse's text.

Start a server with `wsh server` (see `wsh server --help`).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``wsh`` argument parser (``wsh server ...`` is handed over before it)."""
    parser = argparse.ArgumentParser(
        prog="wsh",
        description="Terminal sessions on real PTYs, for agents and people.",
        epilog=_main_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(nested=False)],
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shared = [_global_options(nested=True)]

    def command(
        name: str, handler: _Handler, help: str, epilog: str | None = None
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=shared,
        )
        sub.set_defaults(handler=handler)
        return sub

    # Listed for --help; main() hands `wsh server ...` to wsh.server first.
    commands.add_parser(
        "server", help="run a server (its options: wsh server --help)", add_help=False
    ).set_defaults(handler=None)

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

    sub = command(
        "list",
        _cmd_list,
        "list sessions",
        epilog="Servers whose sessions could not be listed (not healthy) are named in a "
        "warning\non stderr; with --json the output is "
        '{"sessions": [...], "missing_servers": [...]}.',
    )
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

    sub = command(
        "idle",
        _cmd_idle,
        "wait until a session goes quiet (idle), then print its screen",
        IDLE_EPILOG,
    )
    _add_session(sub)
    _add_idle_options(sub, full=True)

    sub = command(
        "race",
        _cmd_race,
        "print the first session to go quiet (idle)",
        IDLE_EPILOG + "\nWith --all the stream ends, exit status 0, once nothing more goes idle\n"
        "within --max-wait-ms.\n",
    )
    sub.add_argument("--tag", action="append", metavar="T", help="sessions having any of these")
    _add_server_option(sub, "only this server's sessions (default: whole cluster)")
    _add_idle_options(sub, full=True)
    sub.add_argument(
        "--last-session", default="", help="skip it until it moves past --last-generation"
    )
    sub.add_argument("--last-server", default="", help="server of --last-session")
    sub.add_argument("--all", action="store_true", help="keep printing sessions as they settle")
    sub.add_argument(
        "--count",
        type=_uint32,
        default=0,
        metavar="N",
        help="keep printing sessions as they settle until N different ones have",
    )

    sub = command(
        "run",
        _cmd_run,
        "send input, wait until the session goes quiet, print the screen",
        IDLE_EPILOG + "\nOnly output after the input counts: the wait starts at its generation.\n",
    )
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
    sub.add_argument("rows", metavar="ROWS", type=_uint32, help="new height in lines")
    sub.add_argument("cols", metavar="COLS", type=_uint32, help="new width in columns")

    servers = command("servers", _cmd_servers_list, "list and manage the cluster's servers")
    actions = servers.add_subparsers(dest="servers_command", metavar="ACTION")
    # The backend's own --token must not collide with the one for this server.
    nested = [_global_options(nested=True, token=False)]

    def action(
        name: str, handler: _Handler, help: str, epilog: str | None = None
    ) -> argparse.ArgumentParser:
        sub = actions.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=nested,
        )
        sub.set_defaults(handler=handler)
        return sub

    action("list", _cmd_servers_list, "list servers (the default)")
    sub = action("get", _cmd_servers_get, "show one server")
    sub.add_argument("hostname", metavar="HOST", help="the server's hostname")
    sub = action(
        "add",
        _cmd_servers_add,
        "register a backend and wait until it is healthy",
        "If it is not healthy in time it stays registered (and saved in the hub's\n"
        "config file), the hub keeps retrying, and the exit status is 7; a rejected\n"
        "backend (self loop, hostname taken) exits with 8. Either way\n"
        "`wsh servers remove ADDRESS` drops it.",
    )
    sub.add_argument("address", metavar="ADDRESS", help="http[s]://host:port[/prefix]")
    sub.add_argument("--token", dest="backend_token", help="the backend's bearer token")
    sub.add_argument("--no-wait", action="store_true", help="return at once (CONNECTING)")
    sub.add_argument(
        "--wait-timeout-ms",
        type=_uint32,
        default=0,
        metavar="MS",
        help="how long to wait for it to be healthy (default: 10000; at most 120000)",
    )
    sub = action("remove", _cmd_servers_remove, "deregister a backend")
    sub.add_argument(
        "host_or_address",
        metavar="HOST_OR_ADDRESS",
        help="hostname, or the address (always works, also while the hostname is unknown)",
    )
    action("reload", _cmd_servers_reload, "reload backends from the config file")

    command("info", _cmd_info, "show this server's identity")
    return parser


# --- Entry point ---------------------------------------------------------------


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


def _run(argv: list[str]) -> int:
    if argv[:1] == ["server"]:
        # Imported here so that client commands never load the server's stack.
        from wsh.server import main as server_main

        return server_main(argv[1:])
    parser = build_parser()
    try:
        # Known args only: `wsh --json server --listen x` is refused below
        # with a better message than "unrecognized arguments: --listen".
        args, unknown = parser.parse_known_args(argv)
        if unknown and args.handler is not None:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    out = args.output = Output(args.json)
    try:
        if args.handler is None:
            raise UsageError("`server` takes its own options, after it: wsh server --help")
        with _client(args) as client:
            try:
                handler: _Handler = args.handler
                return handler(client, args)
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
