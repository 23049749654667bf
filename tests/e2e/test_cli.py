"""The `wsh` command against a real server, as a person or a script uses it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import wait_health
from tests.procs import ServerProc, stub
from wsh.cli.render import MESSAGE_ERROR_CHARS
from wsh.v1 import hub_pb2

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    config = tmp_path_factory.mktemp("cli") / "hub.toml"
    with ServerProc("cli-hub", "--config", str(config)) as proc:
        yield proc


def wsh(server: ServerProc, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WSH_ADDR": server.addr}
    env.pop("WSH_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "wsh", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def ok(server: ServerProc, *args: str) -> str:
    done = wsh(server, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_agent_loop_with_json(server: ServerProc) -> None:
    created = json.loads(
        ok(server, "--json", "create", "cli1", "--command", "bash --norc", "--tag", "ci")
    )
    assert created["name"] == "cli1" and created["tags"] == ["ci"]
    ok(server, "idle", "cli1", "--quiet-ms", "300")
    screen = ok(server, "run", "cli1", r"echo cli-$((1+1))\n", "--quiet-ms", "300")
    assert "cli-2" in screen.splitlines()
    listed = json.loads(ok(server, "--json", "list", "--tag", "ci"))
    assert [s["name"] for s in listed["sessions"]] == ["cli1"]
    assert listed["missing_servers"] == []
    # 64-bit integers are JSON numbers, not proto3 JSON's strings.
    assert isinstance(listed["sessions"][0]["generation"], int)
    table = ok(server, "list")
    assert "cli1" in table and "NAME" in table.splitlines()[0]
    # The CLI turns escapes into bytes: \x41 is "A", \n is Enter.
    ok(server, "send", "cli1", r"echo X\x41Y\n")
    idle = json.loads(ok(server, "--json", "idle", "cli1", "--quiet-ms", "300"))
    assert "XAY" in idle["screen"]["lines"]
    raced = ok(server, "race", "--tag", "ci", "--quiet-ms", "200")
    assert "cli1" in raced
    ok(server, "rename", "cli1", "cli2")
    tagged = json.loads(ok(server, "--json", "tag", "cli2", "--add", "x", "--remove", "ci"))
    assert tagged["tags"] == ["x"]
    ok(server, "kill", "cli2")


def test_errors_exit_non_zero_with_reason(server: ServerProc) -> None:
    done = wsh(server, "get", "no-such-session")
    assert done.returncode == 3
    assert "SESSION_NOT_FOUND" in done.stderr
    done = wsh(server, "get", "x", "--server", "elsewhere")
    assert done.returncode == 3 and "SERVER_NOT_FOUND" in done.stderr


def test_servers_commands(server: ServerProc, tmp_path: Path) -> None:
    listed = ok(server, "servers")
    assert "cli-hub" in listed and "local" in listed
    with ServerProc("cli-backend", "--config", str(tmp_path / "b.toml")) as backend:
        added = ok(server, "servers", "add", backend.url)
        assert "HEALTHY" in added.upper()
        info = json.loads(ok(server, "--json", "servers", "get", "cli-backend"))
        assert info["hostname"] == "cli-backend"
        ok(server, "create", "remote1", "--server", "cli-backend", "--command", "cat")
        listed_json = json.loads(ok(server, "--json", "list"))
        assert {"remote1": "cli-backend"}.items() <= {
            s["name"]: s["server"] for s in listed_json["sessions"]
        }.items()
        ok(server, "kill", "remote1", "--server", "cli-backend")
        ok(server, "servers", "remove", "cli-backend")
        assert "cli-backend" not in ok(server, "servers")
    bad = wsh(server, "servers", "add", "127.0.0.1:1")
    assert bad.returncode == 1 and "ADDRESS_INVALID" in bad.stderr and "http://" in bad.stderr


# --- No traceback for a user error ------------------------------------------------


def wsh_argv(*args: str) -> str:
    return " ".join([sys.executable, "-m", "wsh", *args])


def piped_to_head(server: ServerProc, *args: str) -> tuple[int, str]:
    """``wsh ARGS | head -1`` in a real shell: wsh's exit status and its stderr."""
    script = f'{wsh_argv(*args)} 2>"$ERR" | head -1 >/dev/null; echo "${{PIPESTATUS[0]}}"'
    err = Path(os.environ.get("TMPDIR", "/tmp")) / f"wsh-err-{os.getpid()}-{args[0]}"
    env = {**os.environ, "WSH_ADDR": server.addr, "ERR": str(err)}
    env.pop("WSH_TOKEN", None)
    try:
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=60, env=env, check=True
        )
        return int(done.stdout.strip()), err.read_text()
    finally:
        err.unlink(missing_ok=True)


def test_output_to_a_closed_pipe_exits_quietly(server: ServerProc) -> None:
    ok(server, "create", "piped", "--command", "seq 1 40000", "--rows", "5")
    ok(server, "idle", "piped", "--quiet-ms", "300")
    # 40000 lines (~230 KB) cannot all fit in the pipe (64 KiB) before head
    # exits after its first line, so the write fails every time.
    code, err = piped_to_head(server, "scrollback", "piped", "--limit", "40000")
    assert (code, err) == (141, "")
    # Small outputs may or may not still be written when head exits.
    for args in (("info",), ("race", "--quiet-ms", "100"), ("--json", "list")):
        code, err = piped_to_head(server, *args)
        assert code in (0, 141) and "Traceback" not in err, (args, err)


@pytest.mark.parametrize("args", [["info"], ["race", "--quiet-ms", "100"], ["list"]])
def test_stdout_without_a_reader_exits_141(server: ServerProc, args: list[str]) -> None:
    with contextlib.suppress(AssertionError):  # already there when run with the others
        ok(server, "create", "reader", "--command", "cat")
    # A pipe whose read end is already closed: every write fails, deterministically.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "WSH_ADDR": server.addr}
    env.pop("WSH_TOKEN", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wsh", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_server_bad_log_level_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wsh", "server", "--log-level", "foo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--log-level" in done.stderr


# --- Exit statuses ------------------------------------------------------------------


def test_exit_statuses(server: ServerProc, unused_tcp_port: int) -> None:
    ticker = "sh -c 'while :; do echo tick; sleep 0.05; done'"
    ok(server, "create", "ticker", "--command", ticker)
    try:
        done = wsh(server, "idle", "ticker", "--quiet-ms", "3000", "--max-wait-ms", "800")
        assert (done.returncode, "IDLE_TIMEOUT" in done.stderr) == (4, True), done.stderr
        done = wsh(server, "--deadline-s", "0.8", "idle", "ticker", "--quiet-ms", "3000")
        assert (done.returncode, "DEADLINE_EXCEEDED" in done.stderr) == (4, True), done.stderr
    finally:
        ok(server, "kill", "ticker")
    done = wsh(server, "--json", "get", "no-such-session")
    assert done.returncode == 3
    assert json.loads(done.stderr) == {
        "code": "NOT_FOUND",
        "reason": "SESSION_NOT_FOUND",
        "message": "Session 'no-such-session' not found.",
        "metadata": {"session": "no-such-session"},
    }
    done = wsh(server, "--addr", f"127.0.0.1:{unused_tcp_port}", "info")
    assert done.returncode == 5 and "cannot reach a wsh server" in done.stderr
    done = wsh(server, "list", "--no-such-option")
    assert done.returncode == 2 and "usage:" in done.stderr


def test_auth_failure_exit_status(tmp_path: Path) -> None:
    token = "cli-test-token-0123456789"
    with ServerProc("cli-guarded", "--config", str(tmp_path / "g.toml"), "--token", token) as g:
        done = wsh(g, "info")
        assert done.returncode == 6 and "UNAUTHENTICATED" in done.stderr
        assert "hint: pass the server's token" in done.stderr
        done = wsh(g, "--json", "--token", "wrong-token-0123456789", "info")
        assert done.returncode == 6
        assert json.loads(done.stderr)["code"] == "PERMISSION_DENIED"  # a wrong token
        assert "wrong-token" not in done.stderr
        assert ok(g, "--token", token, "info").startswith("hostname:")


# --- list: the servers it could not see ---------------------------------------------


def test_list_warns_about_an_unavailable_backend(tmp_path: Path) -> None:
    hub_config, backend_config = str(tmp_path / "hub.toml"), str(tmp_path / "b.toml")
    with (
        ServerProc("lw-hub", "--config", hub_config) as hub,
        ServerProc("lw-backend", "--config", backend_config) as backend,
    ):
        ok(hub, "servers", "add", backend.url)
        assert wsh(hub, "list").stderr == ""
        backend.stop(signal.SIGKILL)
        channel, hub_stub = stub(hub.addr)
        try:
            wait_health(hub_stub, hub_pb2.SERVER_HEALTH_UNAVAILABLE, address=backend.url)
        finally:
            channel.close()
        done = wsh(hub, "list")
        assert done.returncode == 0, done.stderr
        assert "NAME" in done.stdout
        (warning,) = done.stderr.splitlines()
        assert warning.startswith(
            f"wsh: warning: sessions of lw-backend ({backend.url}) not listed: unavailable"
        )
        error = warning.split(" not listed: unavailable: ", 1)[1]
        assert 0 < len(error) <= MESSAGE_ERROR_CHARS
        data = json.loads(ok(hub, "--json", "list"))
        (missing,) = data["missing_servers"]
        assert (missing["hostname"], missing["health"]) == (
            "lw-backend",
            "SERVER_HEALTH_UNAVAILABLE",
        )


# --- servers add: an address nothing listens on ---------------------------------------


def test_servers_add_unreachable_is_kept_and_says_so(
    server: ServerProc, unused_tcp_port: int
) -> None:
    address = f"http://127.0.0.1:{unused_tcp_port}"
    done = wsh(server, "servers", "add", address, "--wait-timeout-ms", "1500")
    assert done.returncode == 7, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(
        rf"wsh: error: {re.escape(address)} is not healthy after 1s: (connecting|unavailable)",
        done.stderr,
    ), done.stderr
    assert "IS registered" in done.stderr and "keeps retrying" in done.stderr
    assert f"hint: to remove it: wsh servers remove {address}\n" in done.stderr
    # It is still there, and a second add says so, with its state.
    assert address in ok(server, "servers")
    again = wsh(server, "servers", "add", address, "--wait-timeout-ms", "1500")
    assert again.returncode == 1
    assert again.stderr.startswith(
        f"wsh: error: SERVER_ALREADY_REGISTERED: {address} is already registered; it is "
    ), again.stderr
    assert f"wsh servers remove {address}" in again.stderr
    # The remedy the hint gives works.
    ok(server, "servers", "remove", address)
    assert address not in ok(server, "servers")


def read_all(fd: int, timeout: float) -> bytes:
    """Everything from a pty master until the child side closes (EIO on Linux)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"pty still open after {timeout}s")
        try:
            data = os.read(fd, 4096)
        except OSError:
            return b"".join(chunks)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_servers_add_shows_progress_on_a_terminal(server: ServerProc, unused_tcp_port: int) -> None:
    address = f"http://127.0.0.1:{unused_tcp_port}"
    env = {**os.environ, "WSH_ADDR": server.addr}
    env.pop("WSH_TOKEN", None)
    master, child = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wsh", "servers", "add", address, "--wait-timeout-ms", "1500"],
            stdout=subprocess.DEVNULL,
            stderr=child,
            env=env,
        )
        os.close(child)
        shown = read_all(master, 60).decode()
        assert proc.wait(60) == 7
    finally:
        os.close(master)
        wsh(server, "servers", "remove", address)
    # A spinner line with the elapsed time and the backend's health as the hub sees it.
    assert re.search(rf"adding {re.escape(address)} \(\ds\): (connecting|unavailable)", shown)
    assert "\r\x1b[K" in shown  # erased before the outcome is printed
    assert "is not healthy after 1s" in shown


def test_idle_of_an_exited_session_says_so_at_once(server: ServerProc) -> None:
    ok(server, "create", "ends", "--command", "echo bye; exit 3")
    out = ok(server, "idle", "ends", "--quiet-ms", "100")
    assert "bye" in out and "exited 3" in out
    generation = json.loads(ok(server, "--json", "get", "ends"))["generation"]
    started = time.monotonic()
    out = ok(server, "idle", "ends", "--last-generation", str(generation), "--max-wait-ms", "20000")
    assert "exited 3" in out and time.monotonic() - started < 10
    ok(server, "kill", "ends")


def test_race_count_streams_until_that_many_settled(server: ServerProc) -> None:
    for name in ("cnt-a", "cnt-b", "cnt-c"):
        ok(server, "create", name, "--tag", "cnt", "--command", "cat")
    out = ok(server, "--json", "race", "--tag", "cnt", "--count", "3", "--quiet-ms", "100")
    assert sorted(json.loads(line)["session"] for line in out.splitlines()) == [
        "cnt-a",
        "cnt-b",
        "cnt-c",
    ]
    for name in ("cnt-a", "cnt-b", "cnt-c"):
        ok(server, "kill", name)


def test_race_count_fails_when_fewer_settle_within_max_wait(server: ServerProc) -> None:
    for name in ("few-a", "few-b"):
        ok(server, "create", name, "--tag", "few", "--command", "cat")
    done = wsh(
        server,
        "--json",
        "race",
        "--tag",
        "few",
        "--count",
        "3",
        "--quiet-ms",
        "100",
        "--max-wait-ms",
        "1500",
    )
    # Both that settled are shown, then the race's timeout: 2 of 3 is no success.
    assert done.returncode == 4, done.stderr
    assert sorted(json.loads(line)["session"] for line in done.stdout.splitlines()) == [
        "few-a",
        "few-b",
    ]
    assert json.loads(done.stderr)["reason"] == "IDLE_TIMEOUT"
    for name in ("few-a", "few-b"):
        ok(server, "kill", name)
