"""Screens, sessions and servers as an agent reads them: text, and plain data.

Every tool answers twice: text for the model (a screen with the cursor
marked) and structured content for the program driving it (generation, exit
code, server...). Both are built here from the SDK's protobuf results.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from wsh.v1 import hub_pb2, types_pb2

CURSOR = "\u2588"
"""The cursor mark: a full block inserted at the cursor's cell, the character
that was there (if any) right after it."""

CURSOR_NOTE = (
    f"The cursor is marked with {CURSOR} inserted at its position (the character under "
    "it follows the mark); a hidden cursor is not marked."
)


def _cells(ch: str) -> int:
    # Wide (CJK, most emoji) characters take two terminal cells, combining marks none.
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def mark_cursor(line: str, col: int) -> str:
    """``line`` with :data:`CURSOR` inserted at cell ``col`` (padded with blanks
    when the line, trailing blanks trimmed, ends before it)."""
    cells = 0
    for index, ch in enumerate(line):
        if cells >= col:
            return line[:index] + CURSOR + line[index:]
        cells += _cells(ch)
    return line + " " * (col - cells) + CURSOR


def screen_text(screen: types_pb2.Screen) -> str:
    """The visible rows, trailing blank rows dropped, the cursor marked."""
    lines = list(screen.lines)
    cursor = screen.cursor
    if cursor.visible and cursor.row < max(screen.rows, len(lines)):
        lines += [""] * (cursor.row + 1 - len(lines))
        lines[cursor.row] = mark_cursor(lines[cursor.row], cursor.col)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def screen_data(screen: types_pb2.Screen) -> dict[str, Any]:
    """The screen's shape and cursor (its lines are the text)."""
    return {
        "rows": screen.rows,
        "cols": screen.cols,
        "cursor_row": screen.cursor.row,
        "cursor_col": screen.cursor.col,
        "cursor_visible": screen.cursor.visible,
        "alternate_screen": screen.alternate_screen,
        "generation": screen.generation,
        "total_lines": screen.total_lines,
    }


def _exit_code(message: types_pb2.Idle | types_pb2.Session) -> int | None:
    return message.exit_code if message.HasField("exit_code") else None


def idle_data(idle: types_pb2.Idle) -> dict[str, Any]:
    """An ``Idle`` (a settled session) as plain data."""
    return {
        "session": idle.session,
        "server": idle.server,
        "generation": idle.generation,
        "exit_code": _exit_code(idle),
        "ready": idle.ready,
        "ready_unknown": idle.ready_unknown,
        "foreground": idle.foreground,
        "last_activity_ms": idle.last_activity_ms,
        "screen": screen_data(idle.screen),
    }


def _status(exit_code: int | None, ready: bool, foreground: str) -> str:
    if exit_code is not None:
        if exit_code < 0:
            return f"killed by signal {-exit_code}"
        return f"exited with code {exit_code}"
    if ready:
        return f"ready: {foreground or 'its program'} waits for input"
    return f"busy: {foreground}" if foreground else "running"


def idle_text(idle: types_pb2.Idle) -> str:
    """A header line (session, server, generation, state), then the screen."""
    state = _status(_exit_code(idle), idle.ready, idle.foreground)
    header = f"[{idle.session} on {idle.server} | generation {idle.generation} | {state}]"
    return f"{header}\n{screen_text(idle.screen)}"


def session_data(session: types_pb2.Session) -> dict[str, Any]:
    """A session as plain data."""
    return {
        "name": session.name,
        "server": session.server,
        "state": types_pb2.SessionState.Name(session.state).removeprefix("SESSION_STATE_").lower(),
        "exit_code": _exit_code(session),
        "ready": session.ready,
        "foreground": session.foreground,
        "idle_ms": session.last_activity_ms,
        "generation": session.generation,
        "tags": list(session.tags),
        "command": session.command,
        "pid": session.pid,
        "rows": session.rows,
        "cols": session.cols,
        "cwd": session.cwd,
    }


def session_state(session: types_pb2.Session) -> str:
    """``running``, ``ready: bash waits for input``, ``exited with code 0``..."""
    return _status(_exit_code(session), session.ready, session.foreground)


def session_line(session: types_pb2.Session) -> str:
    """One line per session for ``list_sessions``."""
    state = session_state(session)
    tags = f" tags={','.join(session.tags)}" if session.tags else ""
    return (
        f"{session.name} on {session.server}: {state}, idle {session.last_activity_ms} ms, "
        f"generation {session.generation}{tags}"
    )


def server_data(server: hub_pb2.Server) -> dict[str, Any]:
    """A server of the cluster as plain data."""
    return {
        "hostname": server.hostname,
        "address": server.address,
        "health": hub_pb2.ServerHealth.Name(server.health).removeprefix("SERVER_HEALTH_").lower(),
        "role": hub_pb2.ServerRole.Name(server.role).removeprefix("SERVER_ROLE_").lower(),
        "sessions": server.session_count,
        "latency_ms": round(server.latency_ms, 3),
        "last_error": server.last_error,
    }


def server_line(server: hub_pb2.Server) -> str:
    """One line per server for ``list_servers``."""
    data = server_data(server)
    error = f", last error: {server.last_error}" if server.last_error else ""
    return (
        f"{data['hostname'] or '(unknown)'} ({data['role']}, {data['address']}): "
        f"{data['health']}, {data['sessions']} sessions{error}"
    )
