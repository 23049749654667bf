"""Protobuf <-> domain conversion. The only place that knows both sides."""

from __future__ import annotations

import math

from google.protobuf import timestamp_pb2

from wsh.sessions.changes import ChangeKind
from wsh.sessions.info import SessionInfo, SessionState
from wsh.terminal.screen import Color, ScreenView, Span, StyledLine
from wsh.v1 import hub_pb2, types_pb2

_STATE_TO_PB = {
    SessionState.RUNNING: types_pb2.SESSION_STATE_RUNNING,
    SessionState.EXITED: types_pb2.SESSION_STATE_EXITED,
}
_STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}
_CHANGE_TO_PB = {
    ChangeKind.CREATED: hub_pb2.WATCH_EVENT_SESSION_CREATED,
    ChangeKind.RENAMED: hub_pb2.WATCH_EVENT_SESSION_RENAMED,
    ChangeKind.TAGS_CHANGED: hub_pb2.WATCH_EVENT_SESSION_TAGS_CHANGED,
    ChangeKind.RESIZED: hub_pb2.WATCH_EVENT_SESSION_RESIZED,
    ChangeKind.EXITED: hub_pb2.WATCH_EVENT_SESSION_EXITED,
    ChangeKind.KILLED: hub_pb2.WATCH_EVENT_SESSION_KILLED,
    ChangeKind.EXPIRED: hub_pb2.WATCH_EVENT_SESSION_EXPIRED,
    ChangeKind.REMOVED: hub_pb2.WATCH_EVENT_SESSION_REMOVED,
    ChangeKind.BUSY: hub_pb2.WATCH_EVENT_SESSION_BUSY,
    ChangeKind.IDLE: hub_pb2.WATCH_EVENT_SESSION_IDLE,
}


def is_ready(mode: int) -> bool:
    """UNSPECIFIED means QUIET, the behaviour from before modes existed."""
    return mode == hub_pb2.IDLE_MODE_READY


def is_styled(fmt: int) -> bool:
    """UNSPECIFIED means PLAIN: the cheap format unless asked otherwise."""
    return fmt == types_pb2.SCREEN_FORMAT_STYLED


def watch_event(kind: ChangeKind) -> hub_pb2.WatchEvent.ValueType:
    return _CHANGE_TO_PB[kind]


def timestamp(unix_s: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    if math.isfinite(unix_s) and unix_s >= 0:
        ts.FromNanoseconds(int(unix_s * 1e9))
    return ts


def session_to_pb(info: SessionInfo) -> types_pb2.Session:
    pb = types_pb2.Session(
        name=info.name,
        server=info.server,
        tags=info.tags,
        command=info.command,
        pid=info.pid,
        rows=info.rows,
        cols=info.cols,
        state=_STATE_TO_PB[info.state],
        generation=info.generation,
        created_at=timestamp(info.created_at),
        last_activity_ms=info.last_activity_ms,
        cwd=info.cwd,
        ready=info.ready,
        foreground=info.foreground,
    )
    if info.exit_code is not None:
        pb.exit_code = info.exit_code
    return pb


def session_from_pb(pb: types_pb2.Session) -> SessionInfo:
    return SessionInfo(
        name=pb.name,
        server=pb.server,
        tags=tuple(pb.tags),
        command=pb.command,
        pid=pb.pid,
        rows=pb.rows,
        cols=pb.cols,
        state=_STATE_FROM_PB.get(pb.state, SessionState.RUNNING),
        exit_code=pb.exit_code if pb.HasField("exit_code") else None,
        generation=pb.generation,
        created_at=pb.created_at.ToNanoseconds() / 1e9,
        last_activity_ms=pb.last_activity_ms,
        cwd=pb.cwd,
        ready=pb.ready,
        foreground=pb.foreground,
    )


def _color(color: Color | None) -> types_pb2.Color | None:
    if color is None:
        return None
    if color.rgb is not None:
        return types_pb2.Color(rgb=color.rgb)
    return types_pb2.Color(indexed=color.indexed or 0)


def _span(span: Span) -> types_pb2.StyledSpan:
    return types_pb2.StyledSpan(
        text=span.text,
        fg=_color(span.fg),
        bg=_color(span.bg),
        bold=span.bold,
        italic=span.italic,
        underline=span.underline,
        inverse=span.inverse,
        faint=span.faint,
        strikethrough=span.strikethrough,
        blink=span.blink,
    )


def styled_line_to_pb(line: StyledLine) -> types_pb2.StyledLine:
    return types_pb2.StyledLine(spans=[_span(s) for s in line])


def styled_lines_to_pb(lines: tuple[StyledLine, ...]) -> list[types_pb2.StyledLine]:
    return [styled_line_to_pb(line) for line in lines]


def screen_to_pb(view: ScreenView, styled_lines: list[types_pb2.StyledLine]) -> types_pb2.Screen:
    """The screen without its generation, which the caller sets; its styled
    rows come converted (none for a plain view)."""
    return types_pb2.Screen(
        rows=view.rows,
        cols=view.cols,
        lines=view.lines,
        styled_lines=styled_lines,
        cursor=types_pb2.Cursor(
            row=view.cursor.row, col=view.cursor.col, visible=view.cursor.visible
        ),
        alternate_screen=view.alternate_screen,
        first_line_index=view.first_line_index,
        total_lines=view.total_lines,
        styles_truncated=view.styles_truncated,
    )
