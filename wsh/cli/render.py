"""Text for people: tables, details, durations, screens in colour (SGR), all safe to print."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from wsh.text import printable as _printable
from wsh.v1 import hub_pb2, types_pb2

# Text from servers as a terminal may show it: whole, controls as U+FFFD.
printable = functools.partial(_printable, limit=None, terminal=True)


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


# --- Sessions and servers ------------------------------------------------------------


def _word(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


def _foreground(name: str, ready: bool) -> str:
    """``bash (ready)`` when it waits for input, ``sleep`` when busy, ``-`` unknown."""
    if not name:
        return "-"
    return f"{name} (ready)" if ready else name


def _state(session: types_pb2.Session) -> str:
    state = _word(types_pb2.SessionState.Name(session.state), "SESSION_STATE_")
    return f"{state}({session.exit_code})" if session.HasField("exit_code") else state


SESSION_HEADERS = ("NAME", "SERVER", "STATE", "FOREGROUND", "PID", "SIZE", "TAGS", "IDLE")
SERVER_HEADERS = ("HOSTNAME", "ADDRESS", "HEALTH", "ROLE", "SESSIONS", "LATENCY", "ERROR")


def session_row(session: types_pb2.Session) -> list[str]:
    """One ``list`` table row."""
    return [
        session.name,
        session.server,
        _state(session),
        _foreground(session.foreground, session.ready),
        str(session.pid) if session.pid else "-",
        f"{session.rows}x{session.cols}",
        ",".join(session.tags) or "-",
        human_ms(session.last_activity_ms),
    ]


def health(server: hub_pb2.Server) -> str:
    """``healthy``, ``unavailable``...: the server's health as one word."""
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
        health(server),
        _word(hub_pb2.ServerRole.Name(server.role), "SERVER_ROLE_"),
        str(server.session_count),
        _latency(server),
        one_line(server.last_error) or "-",
    ]


def server_label(server: hub_pb2.Server) -> str:
    """``hostname (address)``, or the address while the hostname is unknown."""
    return f"{server.hostname} ({server.address})" if server.hostname else server.address


def watch_line(event: hub_pb2.WatchSessionsResponse) -> str:
    """One ``watch`` event on one line: what, on which server and session, and
    what the event says (``session-renamed  build-1/tests  was old-name``)."""
    kind = _word(hub_pb2.WatchEvent.Name(event.event), "WATCH_EVENT_").replace("_", "-")
    if event.resync:
        kind += " (resync)"
    who = f"{event.server}/{event.session}" if event.session else event.server
    session, server = event.session_info, event.server_info
    W = hub_pb2
    detail = ""
    if event.event in (W.WATCH_EVENT_SERVER, W.WATCH_EVENT_SERVER_ADDED):
        detail = f"{server.address}  {server_status(server)}  {server.session_count} sessions"
    elif event.event in (W.WATCH_EVENT_SERVER_HEALTH_CHANGED, W.WATCH_EVENT_SERVER_REMOVED):
        detail = server_status(server)
    elif event.event == W.WATCH_EVENT_SYNCED:
        detail = f"resyncs: {event.resyncs}" if event.resyncs else ""
    elif event.event in (W.WATCH_EVENT_SESSION, W.WATCH_EVENT_SESSION_CREATED):
        quiet = "  quiet" if event.quiet else ""
        detail = (
            f"{_state(session)}  {session.rows}x{session.cols}  "
            f"tags: {','.join(session.tags) or '-'}  {one_line(session.command)}{quiet}"
        )
    elif event.event == W.WATCH_EVENT_SESSION_RENAMED:
        detail = f"was {event.previous_name}"
    elif event.event == W.WATCH_EVENT_SESSION_TAGS_CHANGED:
        detail = f"{','.join(event.previous_tags) or '-'} -> {','.join(session.tags) or '-'}"
    elif event.event == W.WATCH_EVENT_SESSION_RESIZED:
        detail = f"{session.rows}x{session.cols}"
    elif event.event == W.WATCH_EVENT_SESSION_EXITED:
        detail = _state(session)
    elif event.event == W.WATCH_EVENT_SESSION_BUSY:
        detail = f"generation {event.generation}"
    elif event.event == W.WATCH_EVENT_SESSION_IDLE:
        detail = f"generation {event.generation}  quiet {human_ms(event.quiet_ms)}"
    head = f"{kind:<22} {who}" if who else kind
    return printable(f"{head}  {detail}".rstrip())


# gRPC's connection errors run to ~130 characters with the cause at the end
# ("... Failed to connect to remote host: Connection refused"): a message line
# keeps it, a table cell or the spinner line (one terminal row) cannot.
MESSAGE_ERROR_CHARS = 160


def server_status(server: hub_pb2.Server, limit: int = 60) -> str:
    """``unavailable: connection refused``: health and the last error, cut to ``limit``."""
    error = one_line(server.last_error, limit)
    return f"{health(server)}: {error}" if error else health(server)


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
            ("foreground", _foreground(session.foreground, session.ready)),
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


def info_details(info: hub_pb2.GetServerInfoResponse) -> str:
    """A server's identity, one field per line."""
    uptime_ms = info.uptime.ToMilliseconds() if info.HasField("uptime") else 0
    started = info.started_at.ToJsonString() if info.HasField("started_at") else "-"
    return format_details(
        [
            ("hostname", info.hostname),
            ("server_id", info.server_id),
            ("version", info.version),
            ("uptime", human_ms(uptime_ms)),
            ("started", started),
        ]
    )


def reload_changes(result: hub_pb2.ReloadConfigResponse) -> str:
    """What a config reload changed, as a table, or ``no changes``."""
    changes = [
        (verb, address)
        for verb, addresses in (
            ("added", result.added),
            ("removed", result.removed),
            ("updated", result.updated),
        )
        for address in addresses
    ]
    return format_table(("CHANGE", "ADDRESS"), changes) if changes else "no changes"


# --- Screens ---------------------------------------------------------------------


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


def idle_lines(idle: types_pb2.Idle, colour: bool, *, header: bool, gap: bool) -> list[str]:
    """A settled session's screen; ``header`` names it first (``race``), after a blank
    line when ``gap`` (not the first one shown); an exit code is always shown."""
    lines = render_lines(idle.screen.lines, idle.screen.styled_lines, colour)
    exited = f"  exited {idle.exit_code}" if idle.HasField("exit_code") else ""
    if header:
        foreground = (
            f"  {_foreground(printable(idle.foreground), idle.ready)}" if idle.foreground else ""
        )
        title = (
            f"{printable(idle.server)}/{printable(idle.session)}  "
            f"generation {idle.generation}{foreground}{exited}"
        )
        lines[:0] = ["", title] if gap else [title]
    elif exited:
        lines.append(f"[{printable(idle.session)}{exited}]")
    return lines
