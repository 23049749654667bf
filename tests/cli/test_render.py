"""Unit tests of ``wsh`` text output: tables, rows, durations, styled screens."""

from __future__ import annotations

from typing import Any

import pytest

from wsh.cli.render import (
    SERVER_HEADERS,
    format_table,
    human_ms,
    one_line,
    render_lines,
    render_span,
    server_row,
    session_row,
    watch_line,
)
from wsh.v1 import hub_pb2, types_pb2


def test_format_table_aligns_columns() -> None:
    table = format_table(("NAME", "X"), [("a", "1"), ("longer", "22")])
    assert table.splitlines() == ["NAME    X", "a       1", "longer  22"]


def test_format_table_header_only_and_no_trailing_blanks() -> None:
    assert format_table(("A", "BB"), []) == "A  BB"
    table = format_table(("A", "B"), [("xxxx", "")])
    assert all(line == line.rstrip() for line in table.splitlines())


def test_format_table_neutralises_control_characters() -> None:
    table = format_table(("A",), [("evil\x1b]52;c;aGk=\x07",)])
    assert "\x1b" not in table and "\x07" not in table
    assert "evil" in table


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (999, "999ms"),
        (1000, "1s"),
        (59_999, "59s"),
        (60_000, "1m00s"),
        (3_599_000, "59m59s"),
        (3_600_000, "1h00m"),
        (90_061_000, "1d01h"),
    ],
)
def test_human_ms(ms: int, text: str) -> None:
    assert human_ms(ms) == text


def test_session_row() -> None:
    running = types_pb2.Session(
        name="build",
        server="hub",
        pid=42,
        rows=24,
        cols=80,
        state=types_pb2.SESSION_STATE_RUNNING,
        tags=["ci", "fast"],
        last_activity_ms=1500,
    )
    assert session_row(running) == [
        "build",
        "hub",
        "running",
        "-",
        "42",
        "24x80",
        "ci,fast",
        "1s",
    ]
    running.foreground, running.ready = "bash", True
    assert session_row(running)[3] == "bash (ready)"
    running.foreground, running.ready = "sleep", False
    assert session_row(running)[3] == "sleep"
    exited = types_pb2.Session(name="x", state=types_pb2.SESSION_STATE_EXITED, exit_code=3)
    assert session_row(exited)[2:5] == ["exited(3)", "-", "-"]
    assert session_row(exited)[6] == "-"


def test_server_row() -> None:
    local = hub_pb2.Server(
        hostname="hub",
        address="local",
        health=hub_pb2.SERVER_HEALTH_HEALTHY,
        role=hub_pb2.SERVER_ROLE_LOCAL,
        session_count=3,
    )
    assert server_row(local) == ["hub", "local", "healthy", "local", "3", "-", "-"]
    member = hub_pb2.Server(
        address="http://10.0.0.2:7600",
        health=hub_pb2.SERVER_HEALTH_REJECTED,
        role=hub_pb2.SERVER_ROLE_MEMBER,
        latency_ms=1.25,
        last_error="hostname taken",
    )
    # A latency from before it was rejected says nothing about now.
    assert server_row(member) == [
        "-",
        "http://10.0.0.2:7600",
        "rejected",
        "member",
        "0",
        "-",
        "hostname taken",
    ]
    healthy = hub_pb2.Server(
        hostname="b1", health=hub_pb2.SERVER_HEALTH_HEALTHY, role=hub_pb2.SERVER_ROLE_MEMBER
    )
    assert server_row(healthy)[5] == "-"  # no heartbeat measured yet
    healthy.latency_ms = 1.25
    assert server_row(healthy)[5] == "1.2ms"


def test_server_row_error_is_one_short_line() -> None:
    error = "failed to connect to all addresses;\n last error: UNKNOWN: ipv4:127.0.0.1:1: " * 3
    down = hub_pb2.Server(
        address="http://h:1", health=hub_pb2.SERVER_HEALTH_UNAVAILABLE, last_error=error
    )
    cell = server_row(down)[6]
    assert "\n" not in cell and len(cell) == 60 and cell.endswith("\u2026")
    assert cell.startswith("failed to connect to all addresses; last error: UNKNOWN")
    table = format_table(SERVER_HEADERS, [server_row(down)])
    assert len(table.splitlines()) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("short", "short"),
        ("a\n  b\r\nc", "a b c"),
        ("x" * 60, "x" * 60),
        ("x" * 61, "x" * 59 + "\u2026"),
        ("evil\x1b]52", "evil\ufffd]52"),
    ],
)
def test_one_line(text: str, expected: str) -> None:
    assert one_line(text) == expected


def span(text: str, **style: Any) -> types_pb2.StyledSpan:
    return types_pb2.StyledSpan(text=text, **style)


@pytest.mark.parametrize(
    ("styled", "expected"),
    [
        (span("plain"), "plain"),
        (span("r", fg=types_pb2.Color(indexed=1)), "\x1b[31mr\x1b[0m"),
        (span("R", fg=types_pb2.Color(indexed=9)), "\x1b[91mR\x1b[0m"),
        (span("i", fg=types_pb2.Color(indexed=200)), "\x1b[38;5;200mi\x1b[0m"),
        (span("t", bg=types_pb2.Color(rgb=0x102030)), "\x1b[48;2;16;32;48mt\x1b[0m"),
        (span("b", bg=types_pb2.Color(indexed=4)), "\x1b[44mb\x1b[0m"),
        (span("s", bold=True, underline=True, inverse=True), "\x1b[1;4;7ms\x1b[0m"),
        (span("x\x1b", italic=True), "\x1b[3mx\ufffd\x1b[0m"),
    ],
)
def test_render_span(styled: types_pb2.StyledSpan, expected: str) -> None:
    assert render_span(styled) == expected


def test_render_lines_drops_trailing_blank_rows() -> None:
    assert render_lines(["$ ls", "", "a", "", "  "], [], colour=False) == ["$ ls", "", "a"]
    styled = [
        types_pb2.StyledLine(spans=[span("red", fg=types_pb2.Color(indexed=1))]),
        types_pb2.StyledLine(),
    ]
    assert render_lines([], styled, colour=True) == ["\x1b[31mred\x1b[0m"]
    # Without colour the plain lines are used even when spans came too.
    assert render_lines(["red", ""], styled, colour=False) == ["red"]


def test_watch_lines() -> None:
    W = hub_pb2
    renamed = W.WatchSessionsResponse(
        event=W.WATCH_EVENT_SESSION_RENAMED, server="b1", session="new", previous_name="old"
    )
    assert watch_line(renamed) == "session-renamed        b1/new  was old"
    exited = W.WatchSessionsResponse(
        event=W.WATCH_EVENT_SESSION_EXITED,
        server="b1",
        session="s",
        session_info=types_pb2.Session(state=types_pb2.SESSION_STATE_EXITED, exit_code=3),
    )
    assert watch_line(exited) == "session-exited         b1/s  exited(3)"
    idle = W.WatchSessionsResponse(
        event=W.WATCH_EVENT_SESSION_IDLE, server="b1", session="s", generation=7, quiet_ms=60
    )
    assert watch_line(idle) == "session-idle           b1/s  generation 7  quiet 60ms"
    synced = W.WatchSessionsResponse(event=W.WATCH_EVENT_SYNCED, resync=True, resyncs=2)
    assert watch_line(synced) == "synced (resync)  resyncs: 2"
    # A name from a backend cannot drive the terminal.
    hostile = W.WatchSessionsResponse(
        event=W.WATCH_EVENT_SESSION_KILLED, server="b1", session="x\x1b[2J"
    )
    assert "\x1b" not in watch_line(hostile)
