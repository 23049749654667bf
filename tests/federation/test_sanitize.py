"""Checks on what backends send: identity, sessions, inventories, counts."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from wsh.errors import Kind, WshError
from wsh.federation.sanitize import (
    MAX_REMOTE_SESSIONS,
    BackendGarbage,
    check_count,
    check_identity,
    check_inventory,
    check_session,
    clean_foreground,
    clean_idle,
)
from wsh.sessions.info import SessionInfo, SessionState
from wsh.text import printable, quote
from wsh.v1 import types_pb2

BACKEND = "node-1"


def session(**changes: Any) -> SessionInfo:
    base = SessionInfo(
        name="build",
        server=BACKEND,
        tags=("ci", "agent"),
        command="bash -l",
        pid=4242,
        rows=24,
        cols=80,
        state=SessionState.RUNNING,
        exit_code=None,
        generation=7,
        created_at=1_700_000_000.5,
        last_activity_ms=120,
        cwd="/home/u",
    )
    return dataclasses.replace(base, **changes)


def garbage(check: Any, *args: Any) -> BackendGarbage:
    with pytest.raises(BackendGarbage) as info:
        check(*args)
    error = info.value
    assert isinstance(error, WshError)
    assert error.kind is Kind.UNAVAILABLE
    assert error.reason == "BACKEND_INVALID"
    return error


# --- text helpers -------------------------------------------------------------


def test_printable_escapes_control_and_format_characters() -> None:
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("x\ny\tz\x00") == "x\\x0ay\\x09z\\x00"
    assert printable("rtl\u202eevil") == "rtl\\u202eevil"
    assert printable("\U000e0041") == "\\U000e0041"
    assert printable("back\\x1b") == "back\\\\x1b"
    assert printable("héllo wörld") == "héllo wörld"


def test_quote_caps_before_escaping() -> None:
    assert quote("x" * 200) == "'" + "x" * 128 + "...'"
    assert quote("\x07" * 200, limit=3) == "'\\x07\\x07\\x07...'"


# --- check_identity -------------------------------------------------------------


def test_identity_accepted() -> None:
    identity = ("node-1.example.com", "3f2a6c1e-0b7d-4a8e-9c55-1d2e3f4a5b6c", "wsh 0.1.0 (py)")
    assert check_identity(*identity) == identity
    assert check_identity("n", "a" * 64, "") == ("n", "a" * 64, "")


@pytest.mark.parametrize(
    ("hostname", "server_id", "version", "problem"),
    [
        ("", "id", "1", "invalid hostname ''"),
        ("bad host", "id", "1", "invalid hostname 'bad host'"),
        ("-x", "id", "1", "invalid hostname"),
        ("h\x1b[31m", "id", "1", "invalid hostname 'h\\x1b[31m'"),
        ("a" * 254, "id", "1", "invalid hostname"),
        ("h", "", "1", "invalid server ID ''"),
        ("h", "a" * 65, "1", "invalid server ID"),
        ("h", "id_1", "1", "invalid server ID 'id_1'"),
        ("h", "id\n", "1", "invalid server ID 'id\\x0a'"),
        ("h", "id", "v" * 65, "invalid version"),
        ("h", "id", "1.0\x1b]0;pwned\x07", "invalid version '1.0\\x1b]0;pwned\\x07'"),
    ],
)
def test_identity_refused(hostname: str, server_id: str, version: str, problem: str) -> None:
    error = garbage(check_identity, hostname, server_id, version)
    assert problem in error.message
    assert "\x1b" not in error.message
    assert "\n" not in error.message


def test_identity_message_names_the_backend_address() -> None:
    with pytest.raises(BackendGarbage) as info:
        check_identity("bad host", "id", "1", backend="http://10.0.0.1:7600")
    assert info.value.message.startswith("Backend 'http://10.0.0.1:7600' reported")


# --- check_session ----------------------------------------------------------------


def test_valid_session_passes_with_sorted_tags() -> None:
    checked = check_session(session(), BACKEND)
    assert checked == session(tags=("agent", "ci"))


def test_server_is_forced_to_the_backend() -> None:
    assert check_session(session(server="hub-1"), BACKEND).server == BACKEND
    assert check_session(session(server=""), BACKEND).server == BACKEND


def test_duplicate_tags_are_merged() -> None:
    assert check_session(session(tags=("b", "a", "b")), BACKEND).tags == ("a", "b")


def test_long_command_and_cwd_are_truncated() -> None:
    checked = check_session(session(command="x" * 10_000, cwd="/d" * 3000), BACKEND)
    assert checked.command == "x" * 4096
    assert checked.cwd == ("/d" * 3000)[:4096]
    exact = check_session(session(command="y" * 4096), BACKEND)
    assert exact.command == "y" * 4096


def test_exit_code_of_running_session_is_dropped() -> None:
    assert check_session(session(exit_code=3), BACKEND).exit_code is None
    exited = check_session(session(state=SessionState.EXITED, exit_code=-9), BACKEND)
    assert exited.exit_code == -9


@pytest.mark.parametrize(
    "changes",
    [
        {"rows": 1, "cols": 1},
        {"rows": 1000, "cols": 1000},
        {"pid": 0},
        {"generation": 0, "last_activity_ms": 0},
        {"generation": 2**63 - 1, "last_activity_ms": 2**63 - 1},
        {"state": SessionState.EXITED, "exit_code": 2**31 - 1},
        {"state": SessionState.EXITED, "exit_code": -(2**31)},
        {"created_at": 0.0},
        {"tags": tuple(f"t{i}" for i in range(64))},
        {"tags": ()},
        {"name": "ß-ü.名前_1"},
        {"name": "n" * 64},
    ],
)
def test_edge_values_accepted(changes: dict[str, Any]) -> None:
    check_session(session(**changes), BACKEND)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"name": ""}, "invalid name ''"),
        ({"name": "a b"}, "invalid name 'a b'"),
        ({"name": "n" * 65}, "invalid name"),
        ({"name": "x\x1b[2J"}, "invalid name 'x\\x1b[2J'"),
        ({"tags": ("ok", "bad tag")}, "invalid tag 'bad tag'"),
        ({"tags": ("",)}, "invalid tag ''"),
        ({"tags": tuple(f"t{i}" for i in range(65))}, "65 tags (at most 64)"),
        ({"rows": 0}, "0 rows"),
        ({"rows": 1001}, "1001 rows"),
        ({"cols": 0}, "0 columns"),
        ({"cols": 5000}, "5000 columns"),
        ({"pid": -1}, "invalid pid -1"),
        ({"pid": 2**31}, "invalid pid"),
        ({"state": SessionState.EXITED, "exit_code": 2**31}, "invalid exit code"),
        ({"state": SessionState.EXITED, "exit_code": -(2**31) - 1}, "invalid exit code"),
        ({"generation": -1}, "invalid generation -1"),
        ({"generation": 2**63}, "invalid generation"),
        ({"last_activity_ms": -5}, "invalid idle time -5 ms"),
        ({"created_at": math.nan}, "invalid creation time nan"),
        ({"created_at": math.inf}, "invalid creation time inf"),
        ({"created_at": -math.inf}, "invalid creation time"),
    ],
)
def test_session_refused(changes: dict[str, Any], problem: str) -> None:
    error = garbage(check_session, session(**changes), BACKEND)
    assert problem in error.message
    assert error.message.startswith(f"Backend '{BACKEND}' sent ")
    assert error.metadata == {"server": BACKEND}
    assert "\x1b" not in error.message


def test_session_message_caps_long_values() -> None:
    error = garbage(check_session, session(name="é" * 5000), BACKEND)
    assert len(error.message) < 300


# --- check_inventory --------------------------------------------------------------


def test_inventory_checks_every_entry() -> None:
    infos = [session(name=f"s{i}", server="liar") for i in range(3)]
    checked = check_inventory(infos, BACKEND)
    assert [i.name for i in checked] == ["s0", "s1", "s2"]
    assert {i.server for i in checked} == {BACKEND}


def test_one_bad_entry_refuses_the_inventory() -> None:
    infos = [session(name="a"), session(name="b", rows=0), session(name="c")]
    assert "'b'" in garbage(check_inventory, infos, BACKEND).message


def test_duplicate_names_refuse_the_inventory() -> None:
    infos = [session(name="a"), session(name="b"), session(name="a", pid=1)]
    error = garbage(check_inventory, infos, BACKEND)
    assert error.message == f"Backend '{BACKEND}' listed session 'a' twice."


def test_inventory_size_limit() -> None:
    infos = [session(name=f"s{i}") for i in range(MAX_REMOTE_SESSIONS)]
    assert len(check_inventory(infos, BACKEND)) == MAX_REMOTE_SESSIONS
    error = garbage(check_inventory, [*infos, session(name="one-more")], BACKEND)
    assert f"{MAX_REMOTE_SESSIONS + 1} sessions" in error.message
    assert check_inventory([], BACKEND) == []


# --- check_count ----------------------------------------------------------------


def test_count_within_limit() -> None:
    assert check_count(0, 10) == 0
    assert check_count(10, 10) == 10


def test_count_refused() -> None:
    error = garbage(check_count, 11, 10)
    assert error.message == "A backend sent 11 items; at most 10 are allowed."
    garbage(check_count, -1, 10)
    with pytest.raises(BackendGarbage) as info:
        check_count(3, 2, what="scrollback lines", backend="node-2")
    assert info.value.message == "Backend 'node-2' sent 3 scrollback lines; at most 2 are allowed."


def test_foreground_names_are_capped_and_escaped() -> None:
    # Any program names itself (prctl PR_SET_NAME): a name is text to show.
    hostile = "\x1b]52;c;aGk=\x07" + "v" * 500
    cleaned = check_session(session(foreground=hostile, ready=True), BACKEND)
    assert cleaned.foreground == clean_foreground(hostile)
    assert cleaned.foreground.startswith("\\x1b]52") and "\x1b" not in cleaned.foreground
    # Cut to 64 characters first, then escaped ("..." marks the cut).
    assert cleaned.foreground.endswith("v" * 50 + "...") and cleaned.ready
    idle = types_pb2.Idle(
        session="build", screen=types_pb2.Screen(rows=1, cols=1, lines=[""]), foreground=hostile
    )
    assert clean_idle(idle, BACKEND).foreground == clean_foreground(hostile)
    assert clean_foreground("vim") == "vim"
