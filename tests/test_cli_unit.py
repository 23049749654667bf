"""Unit tests of the ``wsh`` command: parsing, formatting, and runs against a fake hub."""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
import types
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import wsh
from wsh import cli
from wsh.cli import (
    Spinner,
    build_parser,
    decode_escapes,
    format_table,
    human_ms,
    main,
    render_lines,
    render_span,
    server_row,
    session_row,
    to_dict,
)
from wsh.client import WshRpcError
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

Ctx = grpc.ServicerContext

# --- Escapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", b"plain text"),
        (r"ls -l\n", b"ls -l\n"),
        (r"\r\t\e\\\0", b"\r\t\x1b\\\x00"),
        (r"\a\b\f\v", b"\x07\x08\x0c\x0b"),
        (r"\x03", b"\x03"),
        (r"\x1b[A\xff", b"\x1b[A\xff"),
        (r"\u00e9\u4e2d", "é中".encode()),
        ("é", "é".encode()),
        (r"a\\nb", b"a\\nb"),
        (r"\x41BC", b"ABC"),
        ("", b""),
    ],
)
def test_decode_escapes(text: str, expected: bytes) -> None:
    assert decode_escapes(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (r"\q", "unknown escape"),
        ("abc\\", "trailing backslash"),
        (r"\x3", "2 hex digits"),
        (r"\xZZ", "2 hex digits"),
        (r"\x+1", "2 hex digits"),
        (r"\u12", "4 hex digits"),
        (r"\ud800", "surrogate"),
    ],
)
def test_decode_escapes_rejects(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        decode_escapes(text)


def test_undecodable_argument_bytes_pass_through() -> None:
    # How Python hands over an argv byte that is not UTF-8.
    assert decode_escapes(b"\xff\n".decode("utf-8", "surrogateescape")) == b"\xff\n"


def test_invalid_escape_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Exits before any call: the address has nothing listening.
    assert main(["--addr", "127.0.0.1:9", "send", "s", r"oops\q"]) == 2
    assert r"unknown escape \q" in capsys.readouterr().err


# --- Formatting -------------------------------------------------------------------


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
    assert session_row(running) == ["build", "hub", "running", "42", "24x80", "ci,fast", "1s"]
    exited = types_pb2.Session(name="x", state=types_pb2.SESSION_STATE_EXITED, exit_code=3)
    assert session_row(exited)[2:4] == ["exited(3)", "-"]
    assert session_row(exited)[5] == "-"


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
    table = format_table(cli.SERVER_HEADERS, [server_row(down)])
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
    assert cli.one_line(text) == expected


def test_to_dict_keeps_proto_names_and_defaults() -> None:
    session = types_pb2.Session(name="a", last_activity_ms=5, state=types_pb2.SESSION_STATE_EXITED)
    data = to_dict(session)
    assert data["name"] == "a"
    assert data["last_activity_ms"] == 5  # a number, though proto3 JSON writes a string
    assert data["state"] == "SESSION_STATE_EXITED"
    assert data["pid"] == 0  # defaults are printed, so scripts can rely on keys
    assert "exit_code" not in data  # unset optional stays absent
    json.dumps(data)


def test_to_dict_gives_64_bit_integers_back_as_numbers() -> None:
    idle = types_pb2.Idle(
        session="a", generation=2**40, screen=types_pb2.Screen(generation=7, lines=["x"])
    )
    assert to_dict(idle)["generation"] == 2**40
    assert to_dict(idle)["screen"]["generation"] == 7
    listed = hub_pb2.ListSessionsResponse(
        sessions=[session("a", generation=3), session("b", generation=4)],
        missing_servers=[hub_pb2.Server(hostname="b2", latency_ms=1.5)],
    )
    data = to_dict(listed)
    assert [s["generation"] for s in data["sessions"]] == [3, 4]
    assert data["missing_servers"][0]["latency_ms"] == 1.5
    # Well-known types keep their own JSON form.
    stamped = types_pb2.Session(name="t", generation=1)
    stamped.created_at.FromSeconds(0)
    assert to_dict(stamped)["created_at"] == "1970-01-01T00:00:00Z"
    assert json.loads(json.dumps(to_dict(stamped)))["generation"] == 1


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


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_spinner_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    with Spinner("waiting", stream=stream, interval=0.01):
        time.sleep(0.05)
    assert stream.getvalue() == ""


def test_spinner_draws_and_clears_on_a_terminal() -> None:
    stream = FakeTTY()
    with Spinner("waiting", stream=stream, interval=0.01):
        time.sleep(0.05)
    out = stream.getvalue()
    assert "waiting (0s)" in out
    assert out.endswith("\r\x1b[K")


# --- Argument parsing ----------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "handler", "expected"),
    [
        (
            ["create", "w", "--command", "bash -l", "--rows", "50", "--cols", "120"],
            "_cmd_create",
            {"name": "w", "command": "bash -l", "rows": 50, "cols": 120, "server": ""},
        ),
        (
            ["create", "--env", "A=1", "--env", "B=x=y", "--tag", "t1", "--tag", "t2"],
            "_cmd_create",
            {"name": "", "env": [("A", "1"), ("B", "x=y")], "tag": ["t1", "t2"]},
        ),
        (["create", "--cwd", "/tmp", "--server", "b1"], "_cmd_create", {"cwd": "/tmp"}),
        (["list"], "_cmd_list", {"tag": None, "server": ""}),
        (["list", "--tag", "a", "--server", "b1"], "_cmd_list", {"tag": ["a"], "server": "b1"}),
        (["get", "s", "--server", "b1"], "_cmd_get", {"name": "s", "server": "b1"}),
        (["send", "s", r"ls\n"], "_cmd_send", {"text": r"ls\n", "no_escapes": False}),
        (["send", "s", "--stdin"], "_cmd_send", {"text": None, "stdin": True}),
        (["send", "s", "x", "--no-escapes"], "_cmd_send", {"no_escapes": True}),
        (["screen", "s", "--styled"], "_cmd_screen", {"styled": True}),
        (
            ["scrollback", "s", "--offset", "10", "--limit", "5"],
            "_cmd_scrollback",
            {"offset": 10, "limit": 5},
        ),
        (
            ["idle", "s"],
            "_cmd_idle",
            {"quiet_ms": 500, "max_wait_ms": 0, "last_generation": None, "fresh": False},
        ),
        (
            ["idle", "s", "--quiet-ms", "100", "--max-wait-ms", "9000", "--fresh"],
            "_cmd_idle",
            {"quiet_ms": 100, "max_wait_ms": 9000, "fresh": True},
        ),
        (["idle", "s", "--last-generation", "7"], "_cmd_idle", {"last_generation": 7}),
        (["race"], "_cmd_race", {"tag": None, "all": False, "last_session": ""}),
        (
            [
                "race",
                "--tag",
                "ci",
                "--last-session",
                "a",
                "--last-server",
                "b1",
                "--last-generation",
                "3",
                "--all",
                "--quiet-ms",
                "50",
            ],
            "_cmd_race",
            {
                "tag": ["ci"],
                "last_session": "a",
                "last_server": "b1",
                "last_generation": 3,
                "all": True,
                "quiet_ms": 50,
            },
        ),
        (["run", "s", r"make\n", "--quiet-ms", "800"], "_cmd_run", {"quiet_ms": 800}),
        (["kill", "s"], "_cmd_kill", {"name": "s"}),
        (["rename", "s", "t"], "_cmd_rename", {"name": "s", "new_name": "t"}),
        (
            ["tag", "s", "--add", "a", "--add", "b", "--remove", "c"],
            "_cmd_tag",
            {"add": ["a", "b"], "remove": ["c"]},
        ),
        (["resize", "s", "40", "100"], "_cmd_resize", {"rows": 40, "cols": 100}),
        (["servers"], "_cmd_servers_list", {}),
        (["servers", "list"], "_cmd_servers_list", {}),
        (["servers", "get", "b1"], "_cmd_servers_get", {"hostname": "b1"}),
        (
            ["servers", "add", "http://10.0.0.2:7600", "--token", "backend-secret"],
            "_cmd_servers_add",
            {"address": "http://10.0.0.2:7600", "backend_token": "backend-secret", "token": None},
        ),
        (
            ["servers", "add", "http://h:1", "--no-wait", "--wait-timeout-ms", "99"],
            "_cmd_servers_add",
            {"no_wait": True, "wait_timeout_ms": 99},
        ),
        (["servers", "remove", "b1"], "_cmd_servers_remove", {"host_or_address": "b1"}),
        (["servers", "reload"], "_cmd_servers_reload", {}),
        (["info"], "_cmd_info", {}),
    ],
)
def test_parse_commands(argv: list[str], handler: str, expected: dict[str, Any]) -> None:
    args = parse(*argv)
    assert args.handler is getattr(cli, handler)
    for key, value in expected.items():
        assert getattr(args, key) == value, key


def test_global_options_before_or_after_the_command() -> None:
    before = parse("--addr", "h:1", "--json", "--deadline-s", "2.5", "--token", "t", "list")
    after = parse("list", "--addr", "h:1", "--json", "--deadline-s", "2.5", "--token", "t")
    for args in (before, after):
        assert (args.addr, args.json, args.deadline_s, args.token) == ("h:1", True, 2.5, "t")
    # A subcommand must not reset what was given before it.
    assert parse("--json", "servers", "add", "http://h:1").json is True
    assert parse("--deadline-s", "3", "idle", "s").deadline_s == 3
    defaults = parse("list")
    assert (defaults.addr, defaults.json, defaults.deadline_s, defaults.token) == (
        None,
        False,
        None,
        None,
    )


def test_tls_options_parse() -> None:
    args = parse("--ca-file", "ca.pem", "--client-cert", "c.pem", "--client-key", "k.pem", "info")
    assert (args.ca_file, args.client_cert, args.client_key) == ("ca.pem", "c.pem", "k.pem")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["get"],
        ["create", "--env", "NOEQUALS"],
        ["create", "--env", "=v"],
        ["resize", "s", "-1", "5"],
        ["resize", "s", "5"],
        ["idle", "s", "--quiet-ms", "4294967296"],
        ["idle", "s", "--timeout-ms", "-1"],
        ["list", "--deadline-s", "0"],
        ["list", "--timeout", "0"],
        ["servers", "frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "wsh server" in out and "race" in out


def test_bad_address_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--addr", "ftp://h", "list"]) == 2
    assert capsys.readouterr().err.startswith("wsh: error: unsupported scheme")


def test_server_subcommand_is_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 7

    fake = types.ModuleType("wsh.server")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wsh.server", fake)
    assert main(["server", "--listen", "0.0.0.0:1", "--json"]) == 7
    assert seen == [["--listen", "0.0.0.0:1", "--json"]]


# --- Commands against a fake hub ---------------------------------------------------


def error_info(code: grpc.StatusCode, reason: str, message: str) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="wsh.v1"))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    result: grpc.Status = rpc_status.to_status(status)
    return result


def session(name: str, **fields: Any) -> types_pb2.Session:
    return types_pb2.Session(name=name, server="hub", rows=24, cols=80, pid=100, **fields)


def idle_of(name: str, generation: int, lines: list[str]) -> types_pb2.Idle:
    screen = types_pb2.Screen(lines=lines, generation=generation)
    return types_pb2.Idle(session=name, server="hub", generation=generation, screen=screen)


@dataclass
class Hub(hub_pb2_grpc.HubServiceServicer):
    """Canned answers; ``calls`` records (method, request, metadata)."""

    calls: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    add_health: hub_pb2.ServerHealth = hub_pb2.SERVER_HEALTH_HEALTHY
    add_error: grpc.Status | None = None
    race_then_deadline: bool = False
    missing: list[hub_pb2.Server] = field(default_factory=list)
    registered: list[hub_pb2.Server] = field(default_factory=list)

    def _record(self, method: str, request: Any, context: Ctx) -> None:
        metadata = {k: str(v) for k, v in context.invocation_metadata()}
        self.calls.append((method, request, metadata))

    def requests(self, method: str) -> list[Any]:
        return [request for name, request, _ in self.calls if name == method]

    def CreateSession(
        self, request: hub_pb2.CreateSessionRequest, context: Ctx
    ) -> hub_pb2.CreateSessionResponse:
        self._record("CreateSession", request, context)
        created = session(request.name or "0", tags=sorted(request.tags), command="sh")
        return hub_pb2.CreateSessionResponse(session=created)

    def ListSessions(
        self, request: hub_pb2.ListSessionsRequest, context: Ctx
    ) -> hub_pb2.ListSessionsResponse:
        self._record("ListSessions", request, context)
        sessions = [
            session("build", tags=["ci"], state=types_pb2.SESSION_STATE_RUNNING),
            session("old-job", state=types_pb2.SESSION_STATE_EXITED, exit_code=1),
        ]
        return hub_pb2.ListSessionsResponse(sessions=sessions, missing_servers=self.missing)

    def GetSession(
        self, request: hub_pb2.GetSessionRequest, context: Ctx
    ) -> hub_pb2.GetSessionResponse:
        self._record("GetSession", request, context)
        status = error_info(
            grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", f"Session {request.name!r} not found."
        )
        context.abort_with_status(status)

    def KillSession(
        self, request: hub_pb2.KillSessionRequest, context: Ctx
    ) -> hub_pb2.KillSessionResponse:
        self._record("KillSession", request, context)
        return hub_pb2.KillSessionResponse()

    def SendInput(
        self, request: hub_pb2.SendInputRequest, context: Ctx
    ) -> hub_pb2.SendInputResponse:
        self._record("SendInput", request, context)
        return hub_pb2.SendInputResponse(generation=10)

    def GetScreen(
        self, request: hub_pb2.GetScreenRequest, context: Ctx
    ) -> hub_pb2.GetScreenResponse:
        self._record("GetScreen", request, context)
        screen = types_pb2.Screen(rows=4, cols=20, lines=["$ echo hi", "hi", "$", ""])
        return hub_pb2.GetScreenResponse(screen=screen)

    def AwaitIdle(
        self, request: hub_pb2.AwaitIdleRequest, context: Ctx
    ) -> hub_pb2.AwaitIdleResponse:
        self._record("AwaitIdle", request, context)
        idle = idle_of(request.name, request.last_generation + 1, ["$ make", "done", ""])
        return hub_pb2.AwaitIdleResponse(idle=idle)

    def RaceIdle(
        self, request: hub_pb2.RaceIdleRequest, context: Ctx
    ) -> Iterator[hub_pb2.RaceIdleResponse]:
        self._record("RaceIdle", request, context)
        yield hub_pb2.RaceIdleResponse(idle=idle_of("a", 5, ["first"]))
        yield hub_pb2.RaceIdleResponse(idle=idle_of("b", 6, ["second"]))
        if self.race_then_deadline:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Nothing settled.")

    def AddServer(
        self, request: hub_pb2.AddServerRequest, context: Ctx
    ) -> hub_pb2.AddServerResponse:
        self._record("AddServer", request, context)
        if self.add_error is not None:
            context.abort_with_status(self.add_error)
        server = hub_pb2.Server(
            hostname="b1",
            address=request.address,
            health=self.add_health,
            role=hub_pb2.SERVER_ROLE_MEMBER,
            last_error="" if self.add_health == hub_pb2.SERVER_HEALTH_HEALTHY else "self loop",
        )
        return hub_pb2.AddServerResponse(server=server)

    def RemoveServer(
        self, request: hub_pb2.RemoveServerRequest, context: Ctx
    ) -> hub_pb2.RemoveServerResponse:
        self._record("RemoveServer", request, context)
        return hub_pb2.RemoveServerResponse()

    def ListServers(
        self, request: hub_pb2.ListServersRequest, context: Ctx
    ) -> hub_pb2.ListServersResponse:
        self._record("ListServers", request, context)
        local = hub_pb2.Server(
            hostname="hub",
            address="local",
            health=hub_pb2.SERVER_HEALTH_HEALTHY,
            role=hub_pb2.SERVER_ROLE_LOCAL,
        )
        return hub_pb2.ListServersResponse(servers=[local, *self.registered])

    def ReloadConfig(
        self, request: hub_pb2.ReloadConfigRequest, context: Ctx
    ) -> hub_pb2.ReloadConfigResponse:
        self._record("ReloadConfig", request, context)
        return hub_pb2.ReloadConfigResponse(added=["http://n:1"], warnings=["odd entry"])


@dataclass
class Running:
    hub: Hub
    addr: str

    def run(self, *argv: str) -> int:
        return main(["--addr", self.addr, "--deadline-s", "5", *argv])


@pytest.fixture
def hub() -> Iterator[Running]:
    fake = Hub()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    hub_pb2_grpc.add_HubServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield Running(fake, f"127.0.0.1:{port}")
    server.stop(0)


def test_list_prints_a_table(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("list", "--tag", "ci", "--server", "b1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SERVER", "STATE", "PID", "SIZE", "TAGS", "IDLE"]
    assert lines[1].split() == ["build", "hub", "running", "100", "24x80", "ci", "0ms"]
    assert lines[2].split()[:3] == ["old-job", "hub", "exited(1)"]
    (request,) = hub.hub.requests("ListSessions")
    assert (list(request.tags), request.server) == (["ci"], "b1")


def test_list_json(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("--json", "list") == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["sessions"]] == ["build", "old-job"]
    assert data["sessions"][1]["exit_code"] == 1
    assert data["missing_servers"] == []


def test_create_sends_every_field(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["create", "w", "--command", "top", "--rows", "30", "--cols", "90", "--cwd", "/srv"]
    argv += ["--env", "A=1", "--tag", "t", "--server", "b1"]
    assert hub.run(*argv) == 0
    (request,) = hub.hub.requests("CreateSession")
    assert (request.name, request.command, request.rows, request.cols) == ("w", "top", 30, 90)
    assert (request.cwd, dict(request.env), list(request.tags)) == ("/srv", {"A": "1"}, ["t"])
    assert request.server == "b1"
    assert "name:       w" in capsys.readouterr().out


def test_send_decodes_escapes(hub: Running) -> None:
    assert hub.run("send", "s", r"echo hi\n\x03") == 0
    assert hub.run("send", "s", r"echo hi\n", "--no-escapes") == 0
    first, second = hub.hub.requests("SendInput")
    assert first.data == b"echo hi\n\x03"
    assert second.data == b"echo hi\\n"


def test_send_stdin(hub: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = types.SimpleNamespace(buffer=io.BytesIO(b"\x00raw\xff"))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert hub.run("send", "s", "--stdin") == 0
    assert hub.hub.requests("SendInput")[0].data == b"\x00raw\xff"


def test_send_needs_exactly_one_source(hub: Running) -> None:
    assert hub.run("send", "s") == 2
    assert hub.run("send", "s", "x", "--stdin") == 2
    assert hub.hub.requests("SendInput") == []


def test_screen_prints_lines(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("screen", "s") == 0
    assert capsys.readouterr().out == "$ echo hi\nhi\n$\n"
    assert hub.hub.requests("GetScreen")[0].format == types_pb2.SCREEN_FORMAT_PLAIN


def test_styled_json_asks_for_spans(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("screen", "s", "--styled", "--json") == 0
    assert json.loads(capsys.readouterr().out)["lines"][0] == "$ echo hi"
    assert hub.hub.requests("GetScreen")[0].format == types_pb2.SCREEN_FORMAT_STYLED


def test_run_waits_past_its_input(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("run", "build", r"make\n", "--quiet-ms", "300") == 0
    assert capsys.readouterr().out == "$ make\ndone\n"
    (sent,) = hub.hub.requests("SendInput")
    (waited,) = hub.hub.requests("AwaitIdle")
    assert sent.data == b"make\n"
    assert (waited.last_generation, waited.timeout_ms) == (10, 300)


def test_idle_json(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("--json", "idle", "build", "--last-generation", "4", "--fresh") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["session"], data["generation"]) == ("build", 5)
    (request,) = hub.hub.requests("AwaitIdle")
    assert request.fresh and request.last_generation == 4


def test_race_prints_the_first(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("race", "--tag", "ci") == 0
    assert capsys.readouterr().out == "hub/a  generation 5\nfirst\n"


def test_race_all_json_lines(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    hub.hub.race_then_deadline = True
    assert hub.run("--json", "race", "--all") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["session"] for line in lines] == ["a", "b"]


def test_error_output(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--addr", hub.addr, "--token", "tok-SECRET-1", "get", "nope"]) == 3
    captured = capsys.readouterr()
    assert captured.err == "wsh: error: SESSION_NOT_FOUND: Session 'nope' not found.\n"
    assert "SECRET" not in captured.out + captured.err
    assert hub.hub.calls[0][2]["authorization"] == "Bearer tok-SECRET-1"


def test_connection_refused_names_the_address(
    unused_tcp_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    addr = f"127.0.0.1:{unused_tcp_port}"
    assert main(["--addr", addr, "--deadline-s", "5", "list"]) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"wsh: error: UNAVAILABLE: cannot reach a wsh server at {addr}")
    assert "wsh server" in err and "--addr" in err


def test_kill_json_prints_an_object(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("kill", "s") == 0
    assert capsys.readouterr().out == ""
    assert hub.run("kill", "s", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {}


def test_tag_needs_a_change(hub: Running) -> None:
    assert hub.run("tag", "s") == 2


def test_servers_table(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("servers") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "HOSTNAME",
        "ADDRESS",
        "HEALTH",
        "ROLE",
        "SESSIONS",
        "LATENCY",
        "ERROR",
    ]
    assert lines[1].split() == ["hub", "local", "healthy", "local", "0", "-", "-"]


def test_servers_add_waits_and_succeeds(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--token", "hub-token", "servers", "add", "http://b1:7600", "--token", "b-token"]
    assert hub.run(*argv) == 0
    ((_, request, metadata),) = hub.hub.calls
    assert request.wait and request.token == "b-token"
    assert metadata["authorization"] == "Bearer hub-token"
    assert "health:   healthy" in capsys.readouterr().out


def test_servers_add_rejected_fails(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    hub.hub.add_health = hub_pb2.SERVER_HEALTH_REJECTED
    assert hub.run("servers", "add", "http://b1:7600") == 8
    err = capsys.readouterr().err
    assert "b1 (http://b1:7600) was rejected: self loop" in err
    assert "hint: to remove it: wsh servers remove http://b1:7600" in err
    assert not hub.hub.requests("AddServer")[0].HasField("token")


def test_servers_add_no_wait(hub: Running) -> None:
    hub.hub.add_health = hub_pb2.SERVER_HEALTH_CONNECTING
    assert hub.run("servers", "add", "http://b1:7600", "--no-wait") == 0
    assert not hub.hub.requests("AddServer")[0].wait


def test_servers_remove_by_host_or_address(hub: Running) -> None:
    assert hub.run("servers", "remove", "b1") == 0
    assert hub.run("servers", "remove", "http://b1:7600") == 0
    by_host, by_address = hub.hub.requests("RemoveServer")
    assert (by_host.hostname, by_host.address) == ("b1", "")
    assert (by_address.hostname, by_address.address) == ("", "http://b1:7600")


def test_servers_reload(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("servers", "reload") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].split() == ["added", "http://n:1"]
    assert "wsh: warning: odd entry" in captured.err


# --- Help, version, exit statuses, JSON errors --------------------------------------


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from subparsers(sub)


class Grabbed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def server_parser(monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser ``wsh.server.parse_args`` builds, caught as it starts parsing."""
    from wsh import server

    def grab(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise Grabbed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    with pytest.raises(Grabbed) as caught:
        server.parse_args([])
    return caught.value.parser


def test_every_option_has_help(monkeypatch: pytest.MonkeyPatch) -> None:
    parsers = [*subparsers(build_parser()), server_parser(monkeypatch)]
    assert len(parsers) > 20
    missing = [
        f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        for parser in parsers
        for action in parser._actions
        # Renamed options are hidden on purpose; subcommand lists carry their own help.
        if not isinstance(action, cli._Renamed | argparse._SubParsersAction)
        and not (action.help and action.help != argparse.SUPPRESS)
    ]
    assert missing == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"wsh {wsh.__version__}\n"


def test_help_lists_server_and_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    commands = out.split("positional arguments:")[1].split("options:")[0]
    assert "    server " in commands
    statuses = out.split("exit status:")[1]
    codes = [int(line.split()[0]) for line in statuses.splitlines()[1:12]]
    assert codes == [code for code, _ in cli.EXIT_STATUSES]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("command", ["idle", "race", "run"])
def test_idle_help_says_what_idle_means(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "printed nothing for --quiet-ms milliseconds" in out
    assert "sleep 3" in out and "looks idle" in out
    for bound in ("--quiet-ms MS", "--max-wait-ms MS", "--deadline-s S"):
        assert bound in out
    assert "--timeout" not in out  # the old names are hidden


def test_server_after_global_options_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "server", "--listen", "x"]) == 2
    assert "wsh server --help" in capsys.readouterr().err


def test_renamed_options_still_work_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--timeout", "2", "idle", "s", "--timeout-ms", "100")
    assert (args.deadline_s, args.quiet_ms) == (2, 100)
    assert capsys.readouterr().err.splitlines() == [
        "wsh: warning: --timeout is deprecated, use --deadline-s",
        "wsh: warning: --timeout-ms is deprecated, use --quiet-ms",
    ]
    # The new names print nothing.
    parse("--deadline-s", "2", "run", "s", "x", "--quiet-ms", "100")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("code", "reason", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", 3),
        (grpc.StatusCode.NOT_FOUND, "SERVER_NOT_FOUND", 3),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "IDLE_TIMEOUT", 4),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "", 4),
        (grpc.StatusCode.UNAVAILABLE, "", 5),
        (grpc.StatusCode.UNAVAILABLE, "SERVER_UNAVAILABLE", 5),
        (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID", 6),
        (grpc.StatusCode.PERMISSION_DENIED, "IP_FORBIDDEN", 6),
        (grpc.StatusCode.INVALID_ARGUMENT, "NAME_INVALID", 1),
        (grpc.StatusCode.ALREADY_EXISTS, "SESSION_EXISTS", 1),
    ],
)
def test_exit_status(code: grpc.StatusCode, reason: str, status: int) -> None:
    assert cli.exit_status(WshRpcError(code, reason, "m")) == status


def test_json_error_on_stderr(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("--json", "get", "nope") == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err) == {
        "code": "NOT_FOUND",
        "reason": "SESSION_NOT_FOUND",
        "message": "Session 'nope' not found.",
        "metadata": {},
    }


def test_json_errors_for_local_failures(
    unused_tcp_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--json", "--addr", f"127.0.0.1:{unused_tcp_port}", "info"]) == 5
    error = json.loads(capsys.readouterr().err)
    assert (error["code"], error["reason"]) == ("UNAVAILABLE", "")
    assert "wsh server" in error["hint"]
    assert main(["--json", "--addr", "ftp://h", "info"]) == 2
    error = json.loads(capsys.readouterr().err)
    assert (error["code"], error["reason"]) == ("INVALID_ARGUMENT", "USAGE")
    assert main(["--json", "--ca-file", "/nonexistent/ca.pem", "info"]) == 1
    error = json.loads(capsys.readouterr().err)
    assert error["reason"] == "FILE_UNREADABLE" and "/nonexistent/ca.pem" in error["message"]


# --- list: what it could not see; servers add: what became of the backend ----------

DOWN = hub_pb2.Server(
    hostname="b2",
    address="http://10.0.0.3:7600",
    health=hub_pb2.SERVER_HEALTH_UNAVAILABLE,
    role=hub_pb2.SERVER_ROLE_MEMBER,
    last_error="connection refused\n" + "details " * 20,
)


def test_list_warns_about_missing_servers(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    hub.hub.missing = [
        DOWN,
        hub_pb2.Server(address="http://new:1", health=hub_pb2.SERVER_HEALTH_CONNECTING),
    ]
    assert hub.run("list") == 0
    captured = capsys.readouterr()
    assert "build" in captured.out
    first, second = captured.err.splitlines()
    assert first.startswith(
        "wsh: warning: sessions of b2 (http://10.0.0.3:7600) not listed: "
        "unavailable: connection refused details"
    )
    assert first.endswith("\u2026")
    assert second == "wsh: warning: sessions of http://new:1 not listed: connecting"
    assert hub.run("--json", "list") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    data = json.loads(captured.out)
    assert [s["hostname"] for s in data["missing_servers"]] == ["b2", ""]
    assert data["missing_servers"][0]["health"] == "SERVER_HEALTH_UNAVAILABLE"


def test_spinner_shows_a_status(capsys: pytest.CaptureFixture[str]) -> None:
    stream = FakeTTY()
    answers = iter(["connecting", "unavailable: refused"])
    with Spinner("adding x", stream=stream, interval=0.01, status=lambda: next(answers, "done")):
        time.sleep(0.3)
    out = stream.getvalue()
    assert "adding x (0s): connecting\x1b[K" in out
    assert "adding x (0s): unavailable: refused\x1b[K" in out


def test_servers_add_not_healthy_is_kept(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    hub.hub.add_health = hub_pb2.SERVER_HEALTH_UNAVAILABLE
    assert hub.run("servers", "add", "http://b1:7600", "--wait-timeout-ms", "1500") == 7
    err = capsys.readouterr().err
    assert "wsh: error: b1 (http://b1:7600) is not healthy after 1s: unavailable" in err
    assert "IS registered" in err and "keeps retrying" in err
    assert "wsh servers remove http://b1:7600" in err
    assert hub.run("--json", "servers", "add", "http://b1:7600") == 7
    captured = capsys.readouterr()
    assert json.loads(captured.out)["health"] == "SERVER_HEALTH_UNAVAILABLE"
    error = json.loads(captured.err)
    assert (error["code"], error["reason"]) == ("UNAVAILABLE", "SERVER_NOT_HEALTHY")
    assert error["metadata"] == {
        "address": "http://b1:7600",
        "health": "unavailable",
        "last_error": "self loop",  # whole, where the message shortens it
    }


def test_servers_add_again_names_the_registered_one(
    hub: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.hub.add_error = error_info(
        grpc.StatusCode.ALREADY_EXISTS,
        "SERVER_ALREADY_REGISTERED",
        "Backend http://10.0.0.3:7600 is already registered.",
    )
    hub.hub.registered = [DOWN]
    assert hub.run("servers", "add", "http://10.0.0.3:7600/") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "wsh: error: SERVER_ALREADY_REGISTERED: b2 (http://10.0.0.3:7600) is already "
        "registered; it is unavailable: connection refused"
    )
    assert "hint: `wsh servers` shows its state; to remove it: wsh servers remove " in err


def test_readme_lists_the_exit_statuses() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## The `wsh` command")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)
    assert [int(code) for code in rows] == [code for code, _ in cli.EXIT_STATUSES]
