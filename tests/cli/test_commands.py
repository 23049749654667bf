"""Unit tests of the ``wsh`` commands against a fake hub."""

from __future__ import annotations

import io
import json
import sys
import types

import grpc
import pytest

from tests.cli.fake_hub import DOWN, Running, error_info
from wsh.cli import main
from wsh.v1 import hub_pb2, types_pb2


def test_list_prints_a_table(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("list", "--tag", "ci", "--server", "b1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "SERVER",
        "STATE",
        "FOREGROUND",
        "PID",
        "SIZE",
        "TAGS",
        "IDLE",
    ]
    assert lines[1].split() == ["build", "hub", "running", "-", "100", "24x80", "ci", "0ms"]
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
    # Its foreground waited for input before the text: READY by default.
    assert waited.mode == hub_pb2.IDLE_MODE_READY


@pytest.mark.parametrize(
    ("name", "flags", "mode"),
    [
        ("build", ["--no-ready"], hub_pb2.IDLE_MODE_QUIET),
        ("build", ["--ready"], hub_pb2.IDLE_MODE_READY),
    ],
)
def test_run_mode_flags(hub: Running, name: str, flags: list[str], mode: int) -> None:
    assert hub.run("run", name, r"make\n", *flags) == 0
    (waited,) = hub.hub.requests("AwaitIdle")
    assert waited.mode == mode
    # Only the default asks the session first.
    assert hub.hub.requests("GetSession") == []


def test_idle_and_race_ready(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert hub.run("idle", "build", "--ready") == 0
    assert hub.run("race", "--ready") == 0
    assert hub.hub.requests("AwaitIdle")[0].mode == hub_pb2.IDLE_MODE_READY
    assert hub.hub.requests("RaceIdle")[0].mode == hub_pb2.IDLE_MODE_READY
    assert hub.run("idle", "build") == 0
    assert hub.hub.requests("AwaitIdle")[1].mode == hub_pb2.IDLE_MODE_QUIET


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


def test_servers_json_is_an_object(hub: Running, capsys: pytest.CaptureFixture[str]) -> None:
    # Like `list`: an object, so that fields can be added without breaking scripts.
    for argv in (["--json", "servers"], ["servers", "list", "--json"]):
        assert hub.run(*argv) == 0
        data = json.loads(capsys.readouterr().out)
        assert list(data) == ["servers"]
        assert [s["hostname"] for s in data["servers"]] == ["hub"]
        assert data["servers"][0]["role"] == "SERVER_ROLE_LOCAL"


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
