"""End-to-end: one real `wsh server` process running real bash sessions."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.calls import expect_error
from tests.cluster import wait_health
from tests.procs import ServerProc, error_reason, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e

BASH = "bash --norc --noprofile"
RPC_TIMEOUT = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProc("solo", "--exited-retention", "2", log_path=log) as proc:
        yield proc


@pytest.fixture(scope="module")
def hub(server: ServerProc) -> Iterator[hub_pb2_grpc.HubServiceStub]:
    channel, hub_stub = stub(server.addr)
    with channel:
        yield hub_stub


def create(hub: hub_pb2_grpc.HubServiceStub, name: str, **kw: object) -> types_pb2.Session:
    kw.setdefault("command", BASH)
    req = hub_pb2.CreateSessionRequest(name=name, **kw)  # type: ignore[arg-type]
    return hub.CreateSession(req, timeout=RPC_TIMEOUT).session


def kill(hub: hub_pb2_grpc.HubServiceStub, *names: str) -> None:
    for name in names:
        hub.KillSession(hub_pb2.KillSessionRequest(name=name), timeout=RPC_TIMEOUT)


def run(
    hub: hub_pb2_grpc.HubServiceStub, name: str, text: str, timeout_ms: int = 300
) -> types_pb2.Idle:
    """The agent loop: send, wait until the output settles, read the screen."""
    sent = hub.SendInput(
        hub_pb2.SendInputRequest(name=name, data=text.encode()), timeout=RPC_TIMEOUT
    )
    return hub.AwaitIdle(
        hub_pb2.AwaitIdleRequest(
            name=name, timeout_ms=timeout_ms, last_generation=sent.generation, max_wait_ms=10_000
        ),
        timeout=RPC_TIMEOUT,
    ).idle


def settle(hub: hub_pb2_grpc.HubServiceStub, name: str, timeout_ms: int = 300) -> types_pb2.Idle:
    return hub.AwaitIdle(
        hub_pb2.AwaitIdleRequest(name=name, timeout_ms=timeout_ms, max_wait_ms=10_000),
        timeout=RPC_TIMEOUT,
    ).idle


def test_send_wait_read_loop(hub: hub_pb2_grpc.HubServiceStub) -> None:
    session = create(hub, "loop", tags=["b", "a", "b"])
    assert session.server == "solo"
    assert list(session.tags) == ["a", "b"]
    assert session.state == types_pb2.SESSION_STATE_RUNNING and session.pid > 0
    settle(hub, "loop")
    idle = run(hub, "loop", "echo result-$((6*7))\n")
    assert idle.session == "loop" and idle.server == "solo"
    assert any(line == "result-42" for line in idle.screen.lines), idle.screen.lines
    assert idle.generation == idle.screen.generation
    assert len(idle.screen.lines) == 24 and idle.screen.cols == 80
    screen = hub.GetScreen(hub_pb2.GetScreenRequest(name="loop"), timeout=RPC_TIMEOUT).screen
    assert "result-42" in screen.lines
    kill(hub, "loop")


def test_term_env_cwd_and_styled_screen(hub: hub_pb2_grpc.HubServiceStub, tmp_path: object) -> None:
    create(hub, "envs", cwd="/tmp", env={"WSH_TEST_VAR": "xyz"})
    settle(hub, "envs")
    idle = run(hub, "envs", 'echo "$TERM:$WSH_TEST_VAR:$PWD"; printf "\\033[1;31mRED\\033[0m\\n"\n')
    assert "xterm-256color:xyz:/tmp" in idle.screen.lines
    styled = hub.GetScreen(
        hub_pb2.GetScreenRequest(name="envs", format=types_pb2.SCREEN_FORMAT_STYLED),
        timeout=RPC_TIMEOUT,
    ).screen
    spans = [s for line in styled.styled_lines for s in line.spans if s.text == "RED"]
    assert spans and spans[0].bold and spans[0].fg.indexed == 1
    kill(hub, "envs")


def test_server_token_not_inherited(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "noleak")
    settle(hub, "noleak")
    idle = run(hub, "noleak", 'echo "tok=${WSH_TOKEN-unset}"\n')
    assert "tok=unset" in idle.screen.lines
    kill(hub, "noleak")


def test_full_screen_program_uses_alternate_screen(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "pager", rows=20, cols=70)
    settle(hub, "pager")
    idle = run(hub, "pager", "seq 1 500 | less\n", timeout_ms=500)
    assert idle.screen.alternate_screen
    assert idle.screen.lines[0] == "1" and idle.screen.lines[18] == "19"
    idle = run(hub, "pager", "G", timeout_ms=500)
    assert "500" in idle.screen.lines
    idle = run(hub, "pager", "q", timeout_ms=500)
    assert not idle.screen.alternate_screen
    assert any("seq 1 500 | less" in line for line in idle.screen.lines)
    kill(hub, "pager")


def test_resize_delivers_sigwinch_and_new_size(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "winch")
    settle(hub, "winch")
    run(hub, "winch", "trap 'echo WINCH-$(tput lines)x$(tput cols)' WINCH\n")
    session = hub.ResizeSession(
        hub_pb2.ResizeSessionRequest(name="winch", rows=30, cols=100), timeout=RPC_TIMEOUT
    ).session
    assert (session.rows, session.cols) == (30, 100)
    idle = run(hub, "winch", "stty size\n")
    assert "30 100" in idle.screen.lines
    assert any(line.endswith("WINCH-30x100") for line in idle.screen.lines)
    assert idle.screen.rows == 30 and idle.screen.cols == 100
    kill(hub, "winch")


def test_tags_list_rename_retag(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "t1", tags=["ci", "build"])
    create(hub, "t2", tags=["ci"])
    create(hub, "t3", tags=["deploy"])

    def names(*tags: str) -> list[str]:
        resp = hub.ListSessions(hub_pb2.ListSessionsRequest(tags=tags), timeout=RPC_TIMEOUT)
        return sorted(s.name for s in resp.sessions if s.name.startswith("t"))

    assert names("ci") == ["t1", "t2"]
    assert names("build", "deploy") == ["t1", "t3"]
    assert names("nothing") == []
    assert names() == ["t1", "t2", "t3"]
    updated = hub.UpdateSession(
        hub_pb2.UpdateSessionRequest(
            name="t3", new_name="t4", add_tags=["ci"], remove_tags=["deploy"]
        ),
        timeout=RPC_TIMEOUT,
    ).session
    assert updated.name == "t4" and list(updated.tags) == ["ci"]
    # Atomic: an invalid tag leaves the name and tags untouched.
    expect_error(
        lambda: hub.UpdateSession(
            hub_pb2.UpdateSessionRequest(name="t4", new_name="t5", add_tags=["bad tag"]),
            timeout=RPC_TIMEOUT,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_TAG",
    )
    expect_error(
        lambda: hub.UpdateSession(
            hub_pb2.UpdateSessionRequest(name="t4", new_name="t1"), timeout=RPC_TIMEOUT
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "SESSION_NAME_TAKEN",
    )
    got = hub.GetSession(hub_pb2.GetSessionRequest(name="t4"), timeout=RPC_TIMEOUT).session
    assert list(got.tags) == ["ci"]
    assert names("ci") == ["t1", "t2", "t4"]
    kill(hub, "t1", "t2", "t4")


def test_generated_names_are_unique(hub: hub_pb2_grpc.HubServiceStub) -> None:
    a = create(hub, "")
    b = create(hub, "")
    assert a.name and b.name and a.name != b.name
    kill(hub, a.name, b.name)


def _busy(seconds: float) -> str:
    steps = int(seconds / 0.1)
    return f"for i in $(seq {steps}); do echo tick $i; sleep 0.1; done; echo done\n"


def test_race_idle_fastest_first_and_last_session_skip(hub: hub_pb2_grpc.HubServiceStub) -> None:
    for name in ("r-fast", "r-mid", "r-slow"):
        create(hub, name, tags=["race3"])
        settle(hub, name)
    for name, seconds in (("r-slow", 3.0), ("r-mid", 1.5), ("r-fast", 0.3)):
        hub.SendInput(
            hub_pb2.SendInputRequest(name=name, data=_busy(seconds).encode()), timeout=RPC_TIMEOUT
        )
    req = hub_pb2.RaceIdleRequest(tags=["race3"], timeout_ms=600, max_wait_ms=10_000)
    stream = hub.RaceIdle(req, timeout=RPC_TIMEOUT)
    first = next(stream).idle
    stream.cancel()
    assert first.session == "r-fast" and first.server == "solo"
    assert "done" in first.screen.lines
    req = hub_pb2.RaceIdleRequest(
        tags=["race3"],
        timeout_ms=600,
        max_wait_ms=10_000,
        last_session="r-fast",
        last_generation=first.generation,
    )
    stream = hub.RaceIdle(req, timeout=RPC_TIMEOUT)
    second = next(stream).idle
    third = next(stream).idle
    stream.cancel()
    assert (second.session, third.session) == ("r-mid", "r-slow")
    kill(hub, "r-fast", "r-mid", "r-slow")


def test_race_sees_session_created_while_open(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "busy", tags=["late"], command="while :; do echo x; sleep 0.05; done")
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["late"], timeout_ms=400, max_wait_ms=10_000),
        timeout=RPC_TIMEOUT,
    )
    time.sleep(0.5)
    create(hub, "newcomer", tags=["late"], command="echo hi-there; exec cat")
    first = next(stream).idle
    stream.cancel()
    assert first.session == "newcomer"
    assert "hi-there" in first.screen.lines
    kill(hub, "busy", "newcomer")


def test_race_each_generation_once(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "once-a", tags=["once"])
    create(hub, "once-b", tags=["once"], command="sleep 0.8; echo later; exec cat")
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["once"], timeout_ms=300, max_wait_ms=10_000),
        timeout=RPC_TIMEOUT,
    )
    seen = [next(stream).idle for _ in range(3)]
    stream.cancel()
    pairs = [(i.session, i.generation) for i in seen]
    assert len(set(pairs)) == 3, pairs
    assert [s for s, _ in pairs].count("once-b") == 2, pairs
    kill(hub, "once-a", "once-b")


def test_fresh_waits_for_real_silence(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "quiet")
    settle(hub, "quiet")
    started = time.monotonic()
    settle(hub, "quiet", timeout_ms=400)
    assert time.monotonic() - started < 0.4
    started = time.monotonic()
    hub.AwaitIdle(
        hub_pb2.AwaitIdleRequest(name="quiet", timeout_ms=400, fresh=True), timeout=RPC_TIMEOUT
    )
    assert time.monotonic() - started >= 0.4
    kill(hub, "quiet")


def test_last_generation_waits_for_new_activity(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "etag")
    idle = settle(hub, "etag")
    expect_error(
        lambda: hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(
                name="etag", timeout_ms=100, max_wait_ms=500, last_generation=idle.generation
            ),
            timeout=RPC_TIMEOUT,
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
    )
    kill(hub, "etag")


def test_max_wait_expires_on_busy_session(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "noisy", command="while :; do echo x; sleep 0.05; done")
    started = time.monotonic()
    expect_error(
        lambda: hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(name="noisy", timeout_ms=500, max_wait_ms=700),
            timeout=RPC_TIMEOUT,
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
    )
    assert time.monotonic() - started < 5
    # The caller's own gRPC deadline is honoured too.
    with pytest.raises(grpc.RpcError) as info:
        hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(name="noisy", timeout_ms=500, max_wait_ms=60_000),
            timeout=0.5,
        )
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    expect_error(
        lambda: next(
            hub.RaceIdle(
                hub_pb2.RaceIdleRequest(tags=["nomatch-x"], timeout_ms=10), timeout=RPC_TIMEOUT
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "NO_SESSIONS",
    )
    hub.UpdateSession(
        hub_pb2.UpdateSessionRequest(name="noisy", add_tags=["noisy-only"]), timeout=RPC_TIMEOUT
    )
    expect_error(
        lambda: next(
            hub.RaceIdle(
                hub_pb2.RaceIdleRequest(tags=["noisy-only"], timeout_ms=500, max_wait_ms=700),
                timeout=RPC_TIMEOUT,
            )
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
    )
    kill(hub, "noisy")


def test_exited_session_is_retained_then_expires(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "short", command="echo bye-now; exit 3")
    deadline = time.monotonic() + 10
    while True:
        got = hub.GetSession(hub_pb2.GetSessionRequest(name="short"), timeout=RPC_TIMEOUT).session
        if got.state == types_pb2.SESSION_STATE_EXITED or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got.state == types_pb2.SESSION_STATE_EXITED
    assert got.HasField("exit_code") and got.exit_code == 3
    screen = hub.GetScreen(hub_pb2.GetScreenRequest(name="short"), timeout=RPC_TIMEOUT).screen
    assert "bye-now" in screen.lines
    expect_error(
        lambda: hub.SendInput(
            hub_pb2.SendInputRequest(name="short", data=b"x"), timeout=RPC_TIMEOUT
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SESSION_EXITED",
    )
    time.sleep(2.5)  # retention is 2 s on this server
    expect_error(
        lambda: hub.GetSession(hub_pb2.GetSessionRequest(name="short"), timeout=RPC_TIMEOUT),
        grpc.StatusCode.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )


def _fds(pid: int) -> set[str]:
    return {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append((int(entry), fields[0]))
    return out


def test_kill_leaves_no_zombie_and_no_descriptor(
    hub: hub_pb2_grpc.HubServiceStub, server: ServerProc
) -> None:
    fd_count = len(os.listdir(f"/proc/{server.pid}/fd"))
    sessions = [
        create(hub, "victim", command="trap '' HUP; sleep 1000 & exec bash --norc"),
        create(hub, "victim2", command="trap '' HUP TERM; while :; do sleep 1; done"),
    ]
    settle(hub, "victim")
    assert any(pid == sessions[0].pid for pid, _ in _children(server.pid))
    assert len(os.listdir(f"/proc/{server.pid}/fd")) > fd_count
    kill(hub, "victim", "victim2")
    for session in sessions:
        assert not os.path.exists(f"/proc/{session.pid}"), "session leader survived"
    assert _children(server.pid) == []
    ptys = [fd for fd in _fds(server.pid) if fd.startswith(("/dev/pts/", "/dev/ptmx"))]
    assert ptys == []
    assert len(os.listdir(f"/proc/{server.pid}/fd")) == fd_count
    expect_error(
        lambda: hub.GetSession(hub_pb2.GetSessionRequest(name="victim"), timeout=RPC_TIMEOUT),
        grpc.StatusCode.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )


def test_kill_during_await_idle_ends_the_wait(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "doomed", command="while :; do echo x; sleep 0.05; done")
    future = hub.AwaitIdle.future(
        hub_pb2.AwaitIdleRequest(name="doomed", timeout_ms=1000, max_wait_ms=20_000),
        timeout=RPC_TIMEOUT,
    )
    time.sleep(0.3)
    kill(hub, "doomed")
    with pytest.raises(grpc.RpcError) as info:
        future.result(timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert error_reason(info.value) == "SESSION_NOT_FOUND"


def test_scrollback_paging(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "long", command="seq 1 3000; exec cat")
    settle(hub, "long", timeout_ms=300)
    page = hub.GetScrollback(
        hub_pb2.GetScrollbackRequest(name="long", offset=0, limit=5), timeout=RPC_TIMEOUT
    )
    assert list(page.lines) == ["1", "2", "3", "4", "5"]
    assert page.total_lines >= 3000
    page = hub.GetScrollback(
        hub_pb2.GetScrollbackRequest(name="long", offset=2999, limit=1), timeout=RPC_TIMEOUT
    )
    assert list(page.lines) == ["3000"]
    past = hub.GetScrollback(
        hub_pb2.GetScrollbackRequest(name="long", offset=10**9), timeout=RPC_TIMEOUT
    )
    assert list(past.lines) == [] and past.total_lines == page.total_lines
    screen = hub.GetScreen(hub_pb2.GetScreenRequest(name="long"), timeout=RPC_TIMEOUT).screen
    assert screen.first_line_index == screen.total_lines - screen.rows
    kill(hub, "long")


@pytest.mark.parametrize(
    ("make_call", "code", "reason"),
    [
        (
            lambda h: h.CreateSession(hub_pb2.CreateSessionRequest(name="bad name")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SESSION_NAME",
        ),
        (
            lambda h: h.CreateSession(hub_pb2.CreateSessionRequest(name="x" * 65)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SESSION_NAME",
        ),
        (
            lambda h: h.CreateSession(hub_pb2.CreateSessionRequest(tags=["ok", "no/slash"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_TAG",
        ),
        (
            lambda h: h.CreateSession(hub_pb2.CreateSessionRequest(cwd="/no/such/dir")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_CWD",
        ),
        (
            lambda h: h.GetSession(hub_pb2.GetSessionRequest(name="ghost")),
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
        ),
        (
            lambda h: h.KillSession(hub_pb2.KillSessionRequest(name="ghost")),
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
        ),
        (
            lambda h: h.GetScreen(hub_pb2.GetScreenRequest(name="ghost")),
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
        ),
        (
            lambda h: h.AwaitIdle(hub_pb2.AwaitIdleRequest(name="ghost", timeout_ms=10)),
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
        ),
        (
            lambda h: h.GetSession(hub_pb2.GetSessionRequest(name="x", server="elsewhere")),
            grpc.StatusCode.NOT_FOUND,
            "SERVER_NOT_FOUND",
        ),
        (
            lambda h: h.ListSessions(hub_pb2.ListSessionsRequest(server="elsewhere")),
            grpc.StatusCode.NOT_FOUND,
            "SERVER_NOT_FOUND",
        ),
        (
            lambda h: h.GetServer(hub_pb2.GetServerRequest(hostname="elsewhere")),
            grpc.StatusCode.NOT_FOUND,
            "SERVER_NOT_FOUND",
        ),
    ],
)
def test_bad_input_gets_code_and_reason(
    hub: hub_pb2_grpc.HubServiceStub,
    make_call: object,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    expect_error(lambda: make_call(hub), code, reason)  # type: ignore[operator]


def test_name_taken_and_input_too_large(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "dup")
    expect_error(lambda: create(hub, "dup"), grpc.StatusCode.ALREADY_EXISTS, "SESSION_NAME_TAKEN")
    expect_error(
        lambda: hub.SendInput(
            hub_pb2.SendInputRequest(name="dup", data=b"x" * (1024 * 1024 + 1)),
            timeout=RPC_TIMEOUT,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INPUT_TOO_LARGE",
    )
    # Exactly 1 MiB is accepted (the program may read it slowly).
    hub.SendInput(
        hub_pb2.SendInputRequest(name="dup", data=b"#" * (1024 * 1024)), timeout=RPC_TIMEOUT
    )
    kill(hub, "dup")


def test_servers_and_info(hub: hub_pb2_grpc.HubServiceStub, server: ServerProc) -> None:
    servers = hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
    assert servers[0].address == "local" and servers[0].hostname == "solo"
    assert servers[0].health == hub_pb2.SERVER_HEALTH_HEALTHY
    info = hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
    assert info.hostname == "solo" and info.server_id == server.server_id and info.version


def test_too_many_sessions(tmp_path: object) -> None:
    with ServerProc("tiny", "--max-sessions", "2") as proc:
        channel, hub = stub(proc.addr)
        with channel:
            create(hub, "one")
            create(hub, "two")
            expect_error(
                lambda: create(hub, "three"),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_SESSIONS",
            )


def test_sigterm_shuts_down_cleanly() -> None:
    proc = ServerProc("ending").start()
    channel, hub = stub(proc.addr)
    with channel:
        pids = [create(hub, f"s{i}").pid for i in range(2)]
        pids.append(create(hub, "s2", command="while :; do echo x; sleep 0.05; done").pid)
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        waiting = hub.AwaitIdle.future(
            hub_pb2.AwaitIdleRequest(name="s2", timeout_ms=1000, max_wait_ms=60_000),
            timeout=RPC_TIMEOUT,
        )
        time.sleep(0.2)
        assert proc.stop(signal.SIGTERM) == 0
        with pytest.raises(grpc.RpcError) as info:
            waiting.result(timeout=RPC_TIMEOUT)
        # Waits end at once with a clear reason rather than at the grace's end.
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert error_reason(info.value) == "SERVER_SHUTTING_DOWN"
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")


def test_shutdown_ends_races_and_links_at_once_without_tracebacks(tmp_path: Path) -> None:
    """A SIGTERM ends open races with SERVER_SHUTTING_DOWN and the Links of
    hubs cleanly: the hub sees the backend go at once, and neither log holds
    a traceback (gRPC logs the streams it has to cancel after the grace)."""
    with (
        ServerProc("leaving", log_path=tmp_path / "leaving.log") as backend,
        ServerProc("staying", log_path=tmp_path / "staying.log") as hub_proc,
    ):
        shutdown_race_and_link(backend, hub_proc)
    for log in ("leaving.log", "staying.log"):
        assert "Traceback" not in (tmp_path / log).read_text()


def shutdown_race_and_link(backend: ServerProc, hub_proc: ServerProc) -> None:
    channel, hub = stub(backend.addr)
    hub_channel, hub_stub = stub(hub_proc.addr)
    with channel, hub_channel:
        added = hub_stub.AddServer(
            hub_pb2.AddServerRequest(address=backend.url, wait=True), timeout=RPC_TIMEOUT
        ).server
        assert added.health == hub_pb2.SERVER_HEALTH_HEALTHY
        create(hub, "raced", command="cat")
        race = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(timeout_ms=10, max_wait_ms=60_000), timeout=RPC_TIMEOUT
        )
        assert next(race).idle.session == "raced"
        stopping = time.monotonic()
        assert backend.stop(signal.SIGTERM) == 0
        # The grace period is 2 s: ending before it shows the streams were ended, not cut.
        assert time.monotonic() - stopping < 1.8
        with pytest.raises(grpc.RpcError) as info:
            next(race)
        assert error_reason(info.value) == "SERVER_SHUTTING_DOWN"
        # The Link ended cleanly: the hub knows at once, not after 3 s of silence.
        wait_health(hub_stub, hub_pb2.SERVER_HEALTH_UNAVAILABLE, hostname="leaving", timeout=1.0)


@pytest.mark.parametrize("round_", range(3))
def test_a_hub_stopped_with_its_backends_exits(tmp_path: Path, round_: int) -> None:
    """Hub and backends told to stop at once (as a script's trap does): the
    backends end their Links while the hub closes them; the hub must still
    exit (a link task that swallowed its cancellation kept it alive, in 2 of
    3 tries). Three rounds, since it depends on how the two ends meet."""
    with (
        ServerProc("be-a", "--config", str(tmp_path / "a.toml")) as be_a,
        ServerProc("be-b", "--config", str(tmp_path / "b.toml")) as be_b,
        ServerProc("hub", "--config", str(tmp_path / "hub.toml")) as hub_proc,
    ):
        channel, hub = stub(hub_proc.addr)
        with channel:
            for backend in (be_a, be_b):
                hub.AddServer(
                    hub_pb2.AddServerRequest(address=backend.url, wait=True), timeout=RPC_TIMEOUT
                )
            create(hub, "left-running", command="cat")
        time.sleep(0.5)  # Links past their handshake, heartbeats going
        procs = [p.proc for p in (hub_proc, be_a, be_b)]
        for proc in procs:
            assert proc is not None
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert proc is not None
            # Well within the 2 s grace plus session cleanup.
            assert proc.wait(timeout=6) == 0
