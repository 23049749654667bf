"""End-to-end: a hub and two backends as separate processes on loopback."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, await_idle, create, expect_error, kill, send
from tests.cluster import Cluster, server_entry, wait_health, wait_until
from tests.procs import ServerProc, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(cluster_hub: hub_pb2_grpc.HubServiceStub) -> hub_pb2_grpc.HubServiceStub:
    return cluster_hub


def busy(seconds: float, label: str) -> str:
    steps = max(1, int(seconds / 0.1))
    return f"for i in $(seq {steps}); do echo work $i; sleep 0.1; done; echo {label}-finished\n"


def test_list_servers_shows_hub_first_then_backends(hub: hub_pb2_grpc.HubServiceStub) -> None:
    servers = hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
    assert [s.hostname for s in servers] == ["hub", "build-1", "build-2"]
    assert servers[0].address == "local" and servers[0].role == hub_pb2.SERVER_ROLE_LOCAL
    for entry in servers[1:]:
        assert entry.health == hub_pb2.SERVER_HEALTH_HEALTHY
        assert entry.role == hub_pb2.SERVER_ROLE_MEMBER
        assert entry.address.startswith("http://127.0.0.1:")
        assert entry.server_id and not entry.last_error
    got = hub.GetServer(hub_pb2.GetServerRequest(hostname="build-2"), timeout=RPC_TIMEOUT).server
    assert got.hostname == "build-2" and got.health == hub_pb2.SERVER_HEALTH_HEALTHY
    wait_until(lambda: server_entry(hub, "build-1").latency_ms > 0, what="a heartbeat latency")


def test_distributed_fan_out(hub: hub_pb2_grpc.HubServiceStub) -> None:
    """The seed's fan-out: tagged sessions on two backends and the hub, raced by tag."""
    plan = [("build-api", "build-1", 2.4), ("build-web", "build-2", 0.4), ("test-e2e", "", 1.4)]
    for name, server, _ in plan:
        session = create(hub, name, server, tags=["ci"])
        assert session.server == (server or "hub")
        await_idle(hub, name, server)
    listed = hub.ListSessions(hub_pb2.ListSessionsRequest(tags=["ci"]), timeout=RPC_TIMEOUT)
    assert sorted((s.name, s.server) for s in listed.sessions) == [
        ("build-api", "build-1"),
        ("build-web", "build-2"),
        ("test-e2e", "hub"),
    ]
    for name, server, seconds in plan:
        send(hub, name, server, busy(seconds, name))
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["ci"], timeout_ms=700, max_wait_ms=20_000), timeout=30
    )
    settled = [next(stream).idle for _ in range(3)]
    stream.cancel()
    assert [(i.session, i.server) for i in settled] == [
        ("build-web", "build-2"),
        ("test-e2e", "hub"),
        ("build-api", "build-1"),
    ]
    for idle in settled:
        assert f"{idle.session}-finished" in idle.screen.lines
    # The agent loops with last_session/last_server: the first settled is skipped.
    first = settled[0]
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(
            tags=["ci"],
            timeout_ms=300,
            max_wait_ms=20_000,
            last_session=first.session,
            last_server=first.server,
            last_generation=first.generation,
        ),
        timeout=30,
    )
    nxt = next(stream).idle
    stream.cancel()
    assert (nxt.session, nxt.server) != (first.session, first.server)
    for name, server, _ in plan:
        kill(hub, name, server)


def test_sequential_stages_pipeline(hub: hub_pb2_grpc.HubServiceStub) -> None:
    stages = [
        ("build", "build-1", "echo compiled > /tmp/wsh-stage-$$; echo BUILD-OK\n", "BUILD-OK"),
        ("test", "build-2", "echo $((20+22)) tests passed\n", "42 tests passed"),
        ("deploy", "", "echo deployed to $HOSTNAME-ish\n", "deployed to"),
    ]
    for name, server, command, expected in stages:
        create(hub, name, server, tags=["pipeline"])
        await_idle(hub, name, server)
        generation = send(hub, name, server, command)
        idle = await_idle(hub, name, server, last=generation, timeout_ms=300)
        assert idle.server == (server or "hub")
        assert any(expected in line for line in idle.screen.lines), idle.screen.lines
        screen = hub.GetScreen(
            hub_pb2.GetScreenRequest(name=name, server=server), timeout=RPC_TIMEOUT
        ).screen
        assert any(expected in line for line in screen.lines)
    for name, server, _, _ in stages:
        kill(hub, name, server)


def test_every_session_operation_routes(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "remote-ops", "build-2", tags=["x"], rows=10, cols=40)
    session = hub.GetSession(
        hub_pb2.GetSessionRequest(name="remote-ops", server="build-2"), timeout=RPC_TIMEOUT
    ).session
    assert session.server == "build-2" and session.rows == 10
    session = hub.UpdateSession(
        hub_pb2.UpdateSessionRequest(
            name="remote-ops", server="build-2", new_name="remote-ops2", add_tags=["y"]
        ),
        timeout=RPC_TIMEOUT,
    ).session
    assert session.name == "remote-ops2" and list(session.tags) == ["x", "y"]
    session = hub.ResizeSession(
        hub_pb2.ResizeSessionRequest(name="remote-ops2", server="build-2", rows=12, cols=50),
        timeout=RPC_TIMEOUT,
    ).session
    assert (session.rows, session.cols) == (12, 50)
    generation = send(hub, "remote-ops2", "build-2", "seq 1 40\n")
    await_idle(hub, "remote-ops2", "build-2", last=generation)
    page = hub.GetScrollback(
        hub_pb2.GetScrollbackRequest(name="remote-ops2", server="build-2", offset=0, limit=500),
        timeout=RPC_TIMEOUT,
    )
    assert "40" in page.lines and page.total_lines >= 40
    styled = hub.GetScreen(
        hub_pb2.GetScreenRequest(
            name="remote-ops2", server="build-2", format=types_pb2.SCREEN_FORMAT_STYLED
        ),
        timeout=RPC_TIMEOUT,
    ).screen
    assert styled.rows == 12 and styled.styled_lines
    # The hub learns of the rename through the Link inventory.
    wait_until(lambda: server_entry(hub, "build-2").session_count >= 1, what="build-2 inventory")
    # With no server, the one server holding the name gets the call.
    found = hub.GetSession(hub_pb2.GetSessionRequest(name="remote-ops2"), timeout=RPC_TIMEOUT)
    assert found.session.server == "build-2"
    # The backend's own verdict passes through the hub.
    expect_error(
        lambda: hub.GetSession(
            hub_pb2.GetSessionRequest(name="remote-ops2", server="build-1"), timeout=RPC_TIMEOUT
        ),
        grpc.StatusCode.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )
    expect_error(
        lambda: hub.GetSession(
            hub_pb2.GetSessionRequest(name="remote-ops2", server="nowhere"), timeout=RPC_TIMEOUT
        ),
        grpc.StatusCode.NOT_FOUND,
        "SERVER_NOT_FOUND",
    )
    on_b2 = hub.ListSessions(hub_pb2.ListSessionsRequest(server="build-2"), timeout=RPC_TIMEOUT)
    assert [s.name for s in on_b2.sessions] == ["remote-ops2"]
    on_hub = hub.ListSessions(hub_pb2.ListSessionsRequest(server="hub"), timeout=RPC_TIMEOUT)
    assert all(s.server == "hub" for s in on_hub.sessions)
    kill(hub, "remote-ops2", "build-2")
    expect_error(
        lambda: kill(hub, "remote-ops2", "build-2"),
        grpc.StatusCode.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )


def test_awaitidle_deadline_propagates_to_backend(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "chatty", "build-1", command="while :; do echo x; sleep 0.05; done")
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(
                name="chatty", server="build-1", timeout_ms=500, max_wait_ms=60_000
            ),
            timeout=0.8,
        )
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5
    expect_error(
        lambda: hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(
                name="chatty", server="build-1", timeout_ms=500, max_wait_ms=600
            ),
            timeout=RPC_TIMEOUT,
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
    )
    kill(hub, "chatty", "build-1")


def test_race_sees_sessions_created_on_backends_while_open(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    create(hub, "spinner", "", tags=["late2"], command="while :; do echo x; sleep 0.05; done")
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["late2"], timeout_ms=400, max_wait_ms=20_000), timeout=30
    )
    time.sleep(0.5)
    create(hub, "arrival", "build-2", tags=["late2"], command="echo arrived; exec cat")
    first = next(stream).idle
    stream.cancel()
    assert (first.session, first.server) == ("arrival", "build-2")
    assert "arrived" in first.screen.lines
    kill(hub, "spinner")
    kill(hub, "arrival", "build-2")


def test_remove_backend_keeps_its_sessions_running(tmp_path: Path) -> None:
    with Cluster(tmp_path, backends=("solo-b",)) as c:
        assert c.stub is not None
        create(c.stub, "keeper", "solo-b", command="echo alive; exec cat")
        assert c.backends["solo-b"].url in c.hub_config.read_text()
        c.stub.RemoveServer(hub_pb2.RemoveServerRequest(hostname="solo-b"), timeout=RPC_TIMEOUT)
        assert "solo-b" not in [
            s.hostname
            for s in c.stub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
        ]
        assert c.backends["solo-b"].url not in c.hub_config.read_text()
        expect_error(
            lambda: c.stub.GetSession(  # type: ignore[union-attr]
                hub_pb2.GetSessionRequest(name="keeper", server="solo-b"), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.NOT_FOUND,
            "SERVER_NOT_FOUND",
        )
        channel, direct = stub(c.backends["solo-b"].addr)
        with channel:
            session = direct.GetSession(
                hub_pb2.GetSessionRequest(name="keeper"), timeout=RPC_TIMEOUT
            ).session
            assert session.state == types_pb2.SESSION_STATE_RUNNING


def test_backend_killed_during_race_then_restarted(tmp_path: Path) -> None:
    with Cluster(tmp_path, backends=("victim", "survivor")) as c:
        hub = c.stub
        assert hub is not None
        create(hub, "v-busy", "victim", tags=["k"], command="while :; do echo v; sleep 0.05; done")
        create(hub, "s-work", "survivor", tags=["k"])
        create(hub, "h-busy", "", tags=["k"], command="while :; do echo h; sleep 0.05; done")
        await_idle(hub, "s-work", "survivor")
        send(hub, "s-work", "survivor", busy(1.5, "survivor"))
        stream = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["k"], timeout_ms=500, max_wait_ms=20_000), timeout=30
        )
        time.sleep(0.3)
        victim = c.backends["victim"]
        killed_at = time.monotonic()
        victim.stop(signal.SIGKILL)
        first = next(stream).idle
        stream.cancel()
        assert (first.session, first.server) == ("s-work", "survivor")
        entry = wait_health(hub, hub_pb2.SERVER_HEALTH_UNAVAILABLE, hostname="victim", timeout=5)
        print(f"kill -9 to UNAVAILABLE observed within {time.monotonic() - killed_at:.2f}s")
        assert entry.last_error
        listed = hub.ListSessions(hub_pb2.ListSessionsRequest(tags=["k"]), timeout=RPC_TIMEOUT)
        assert sorted(s.name for s in listed.sessions) == ["h-busy", "s-work"]
        expect_error(
            lambda: hub.GetScreen(
                hub_pb2.GetScreenRequest(name="v-busy", server="victim"), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.UNAVAILABLE,
            "SERVER_UNAVAILABLE",
        )
        # Restarted on the same address, it comes back without any call from us.
        victim.listen = victim.addr
        victim.start()
        restarted_at = time.monotonic()
        wait_health(hub, hub_pb2.SERVER_HEALTH_HEALTHY, hostname="victim", timeout=10)
        print(f"restart to HEALTHY within {time.monotonic() - restarted_at:.2f}s")
        assert server_entry(hub, "victim").server_id == victim.server_id  # type: ignore[union-attr]
        # Its old sessions died with it; new ones work.
        expect_error(
            lambda: hub.GetSession(
                hub_pb2.GetSessionRequest(name="v-busy", server="victim"), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
        )
        create(hub, "v-new", "victim", command="echo reborn; exec cat")


def test_backend_joining_during_race_is_raced(tmp_path: Path) -> None:
    with Cluster(tmp_path, backends=()) as c:
        hub = c.stub
        assert hub is not None
        create(hub, "h-spin", "", tags=["j"], command="while :; do echo h; sleep 0.05; done")
        stream = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["j"], timeout_ms=400, max_wait_ms=20_000), timeout=30
        )
        with ServerProc("joiner", "--config", str(tmp_path / "joiner.toml")) as joiner:
            channel, direct = stub(joiner.addr)
            with channel:
                direct.CreateSession(
                    hub_pb2.CreateSessionRequest(
                        name="j1", tags=["j"], command="echo joined; exec cat"
                    ),
                    timeout=RPC_TIMEOUT,
                )
            hub.AddServer(hub_pb2.AddServerRequest(address=joiner.url), timeout=RPC_TIMEOUT)
            first = next(stream).idle
            stream.cancel()
            assert (first.session, first.server) == ("j1", "joiner")


def test_cluster_listing_tracks_remote_activity(hub: hub_pb2_grpc.HubServiceStub) -> None:
    """ListSessions answers from the Link inventory; heartbeats keep activity current."""
    create(hub, "ticker", "build-1", tags=["act"])
    await_idle(hub, "ticker", "build-1")
    generation = send(hub, "ticker", "build-1", "echo tick\n")
    fresh = await_idle(hub, "ticker", "build-1", last=generation).generation

    def listed() -> types_pb2.Session:
        resp = hub.ListSessions(hub_pb2.ListSessionsRequest(tags=["act"]), timeout=RPC_TIMEOUT)
        (session,) = resp.sessions
        return session

    wait_until(lambda: listed().generation == fresh, timeout=5, what="the new generation")
    first = listed().last_activity_ms
    time.sleep(0.3)
    assert listed().last_activity_ms >= first + 250
    direct = hub.GetSession(
        hub_pb2.GetSessionRequest(name="ticker", server="build-1"), timeout=RPC_TIMEOUT
    ).session
    assert abs(direct.last_activity_ms - listed().last_activity_ms) < 1500
    kill(hub, "ticker", "build-1")
    wait_until(
        lambda: (
            not hub.ListSessions(
                hub_pb2.ListSessionsRequest(tags=["act"]), timeout=RPC_TIMEOUT
            ).sessions
        ),
        timeout=5,
        what="the killed session to leave the listing",
    )
