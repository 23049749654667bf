"""Unit tests of ``wsh`` output: JSON conversion, errors as text or JSON, exit statuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import grpc
import pytest

from tests.cli.fake_hub import Running, session
from wsh.cli import main
from wsh.cli.output import EXIT_STATUSES, exit_status, to_dict
from wsh.client import WshRpcError
from wsh.v1 import hub_pb2, types_pb2


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
    assert exit_status(WshRpcError(code, reason, "m")) == status


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


def test_readme_lists_the_exit_statuses() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The `wsh` command")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)
    assert [int(code) for code in rows] == [code for code, _ in EXIT_STATUSES]
