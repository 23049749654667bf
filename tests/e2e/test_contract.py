"""End-to-end: the contract every client relies on (issue: "The contract holds for every client").

Read-your-writes through a hub, routing by session name, exact errors for
bad input, exited sessions, lists that say what they could not see, and
forwarded calls that stay on the backend they were sent to.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, await_idle, create, expect_error, kill, send
from tests.cluster import Cluster, server_entry, wait_health, wait_until
from tests.fakes import FakeBackend, session_dict
from tests.procs import ServerProc, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e

UNAVAILABLE = hub_pb2.SERVER_HEALTH_UNAVAILABLE


@contextlib.contextmanager
def cpu_load(workers: int = 2, seconds: float = 120.0) -> Iterator[None]:
    """Busy processes on every core, so that the hub's Link events lag its answers."""
    burn = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(workers)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def hub(cluster_hub: hub_pb2_grpc.HubServiceStub) -> hub_pb2_grpc.HubServiceStub:
    return cluster_hub


def race_once(
    hub: hub_pb2_grpc.HubServiceStub, **fields: object
) -> hub_pb2.RaceIdleResponse | None:
    """The first settle of a RaceIdle, or None if it ended without one."""
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(**fields),  # type: ignore[arg-type]
        timeout=RPC_TIMEOUT,
    )
    try:
        for response in stream:
            return response
        return None
    finally:
        stream.cancel()


# -- read-your-writes ------------------------------------------------------------


def test_hub_reads_its_own_writes_under_load(hub: hub_pb2_grpc.HubServiceStub) -> None:
    """200 rounds: create on a backend through the hub, then race and list it at once."""
    misses: list[str] = []
    with cpu_load():
        for i in range(200):
            server = ("build-1", "build-2")[i % 2]
            name, tag = f"ryw-{i}", f"ryw-tag-{i}"
            create(hub, name, server, command="cat", tags=[tag])
            try:
                raced = race_once(hub, tags=[tag], timeout_ms=0, max_wait_ms=10_000)
                if raced is None or raced.idle.session != name:
                    misses.append(f"race {name}")
            except grpc.RpcError as err:
                misses.append(f"race {name}: {err.code()}")  # type: ignore[attr-defined]
            for scope in ("", server):
                listed = hub.ListSessions(
                    hub_pb2.ListSessionsRequest(server=scope, tags=[tag]), timeout=RPC_TIMEOUT
                ).sessions
                if [s.name for s in listed] != [name]:
                    misses.append(f"list {name} in {scope or 'cluster'}")
            if i % 4 == 0:
                renamed = f"{name}-b"
                hub.UpdateSession(
                    hub_pb2.UpdateSessionRequest(
                        name=name, new_name=renamed, add_tags=["moved"], remove_tags=[tag]
                    ),
                    timeout=RPC_TIMEOUT,
                )
                listed = hub.ListSessions(
                    hub_pb2.ListSessionsRequest(tags=[tag, "moved"]), timeout=RPC_TIMEOUT
                ).sessions
                if renamed not in [s.name for s in listed] or name in [s.name for s in listed]:
                    misses.append(f"rename {name}")
                name = renamed
            kill(hub, name)
            listed = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT)
            if name in [s.name for s in listed.sessions]:
                misses.append(f"kill {name}")
    assert misses == []


# -- routing by name ----------------------------------------------------------------


def test_a_name_routes_to_the_one_server_holding_it(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "job1", "build-1", command="cat")
    reply = hub.SendInput(
        hub_pb2.SendInputRequest(name="job1", data=b"routed\n"), timeout=RPC_TIMEOUT
    )
    assert reply.server == "build-1"
    idle = await_idle(hub, "job1", last=reply.generation)
    assert idle.server == "build-1" and "routed" in idle.screen.lines
    screen = hub.GetScreen(hub_pb2.GetScreenRequest(name="job1"), timeout=RPC_TIMEOUT)
    assert screen.server == "build-1"
    page = hub.GetScrollback(hub_pb2.GetScrollbackRequest(name="job1"), timeout=RPC_TIMEOUT)
    assert page.server == "build-1"
    killed = hub.KillSession(hub_pb2.KillSessionRequest(name="job1"), timeout=RPC_TIMEOUT)
    assert killed.server == "build-1"


def test_this_servers_session_wins_and_duplicates_are_ambiguous(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    for server in ("build-1", "build-2"):
        create(hub, "twin", server, command="cat")
    message = expect_error(
        lambda: hub.GetSession(hub_pb2.GetSessionRequest(name="twin"), timeout=RPC_TIMEOUT),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SESSION_AMBIGUOUS",
    )
    assert "build-1" in message and "build-2" in message
    create(hub, "twin", "", command="cat")
    got = hub.GetSession(hub_pb2.GetSessionRequest(name="twin"), timeout=RPC_TIMEOUT).session
    assert got.server == "hub"
    for server in ("", "build-1", "build-2"):
        kill(hub, "twin", server)


def test_the_only_holder_down_is_unavailable_and_lists_say_so(tmp_path: Path) -> None:
    with Cluster(tmp_path, backends=("be1",)) as cluster:
        hub = cluster.stub
        assert hub is not None
        create(hub, "lonely", "be1", command="cat")
        cluster.backends["be1"].stop(signal.SIGKILL)
        wait_health(hub, UNAVAILABLE, hostname="be1")
        message = expect_error(
            lambda: hub.GetScreen(hub_pb2.GetScreenRequest(name="lonely"), timeout=RPC_TIMEOUT),
            grpc.StatusCode.UNAVAILABLE,
            "SERVER_UNAVAILABLE",
        )
        assert "be1" in message
        listed = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT)
        assert [s.name for s in listed.sessions] == []
        assert [(m.hostname, m.health) for m in listed.missing_servers] == [("be1", UNAVAILABLE)]
        assert listed.missing_servers[0].last_error


def test_strict_routing_keeps_an_empty_server_local(tmp_path: Path) -> None:
    with (
        ServerProc("be", "--config", str(tmp_path / "be.toml")) as backend,
        ServerProc("strict", "--config", str(tmp_path / "hub.toml"), "--strict-routing") as hub_p,
    ):
        channel, hub = stub(hub_p.addr)
        with channel:
            hub.AddServer(
                hub_pb2.AddServerRequest(address=backend.url, wait=True), timeout=RPC_TIMEOUT
            )
            create(hub, "far", "be", command="cat")
            expect_error(
                lambda: hub.GetSession(hub_pb2.GetSessionRequest(name="far"), timeout=RPC_TIMEOUT),
                grpc.StatusCode.NOT_FOUND,
                "SESSION_NOT_FOUND",
            )
            got = hub.GetSession(
                hub_pb2.GetSessionRequest(name="far", server="be"), timeout=RPC_TIMEOUT
            )
            assert got.session.server == "be"


def test_a_backend_claiming_a_name_later_makes_it_ambiguous(tmp_path: Path) -> None:
    with Cluster(tmp_path, backends=("honest",)) as cluster:
        hub = cluster.stub
        assert hub is not None
        create(hub, "prize", "honest", command="cat")
        liar = FakeBackend(tmp_path, "liar", sessions=[session_dict("prize")]).start()
        try:
            hub.AddServer(
                hub_pb2.AddServerRequest(address=liar.url, wait=True), timeout=RPC_TIMEOUT
            )
            wait_health(hub, hub_pb2.SERVER_HEALTH_HEALTHY, hostname="liar")
            expect_error(
                lambda: hub.SendInput(
                    hub_pb2.SendInputRequest(name="prize", data=b"secret\n"), timeout=RPC_TIMEOUT
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
                "SESSION_AMBIGUOUS",
            )
            assert "SendInput" not in liar.calls()
        finally:
            liar.stop()


def test_race_skips_last_session_found_by_name(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "skip-a", "build-2", command="cat", tags=["skiptag"])
    first = race_once(hub, tags=["skiptag"], timeout_ms=0)
    assert first is not None and first.idle.server == "build-2"
    expect_error(
        lambda: race_once(
            hub,
            tags=["skiptag"],
            timeout_ms=0,
            max_wait_ms=300,
            last_session="skip-a",
            last_generation=first.idle.generation,
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
    )
    kill(hub, "skip-a")


# -- single-server semantics ------------------------------------------------------


def test_exited_sessions_answer_at_once_and_refuse_resize(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    for server in ("", "build-1"):
        create(hub, "done", server, command="echo bye; exit 3", tags=["gone"])
        wait_until(
            lambda s=server: (
                hub.GetSession(  # type: ignore[misc]
                    hub_pb2.GetSessionRequest(name="done", server=s), timeout=RPC_TIMEOUT
                ).session.state
                == types_pb2.SESSION_STATE_EXITED
            ),
            what="the session to exit",
        )
        final = await_idle(hub, "done", server)
        started = time.monotonic()
        again = await_idle(hub, "done", server, last=final.generation, max_wait_ms=20_000)
        assert time.monotonic() - started < 5
        assert again.generation == final.generation and again.exit_code == 3
        assert "bye" in again.screen.lines
        expect_error(
            lambda s=server: hub.ResizeSession(  # type: ignore[misc]
                hub_pb2.ResizeSessionRequest(name="done", server=s, rows=10, cols=10),
                timeout=RPC_TIMEOUT,
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "SESSION_EXITED",
        )
        # A race reports it once; skipped at its final generation it is out.
        raced = race_once(hub, tags=["gone"], server=server or "hub", timeout_ms=0)
        assert raced is not None and raced.idle.exit_code == 3
        expect_error(
            lambda s=server, g=final.generation: race_once(  # type: ignore[misc]
                hub,
                tags=["gone"],
                server=s or "hub",
                last_session="done",
                last_server=s or "hub",
                last_generation=g,
            ),
            grpc.StatusCode.NOT_FOUND,
            "NO_SESSIONS",
        )
        kill(hub, "done", server)


@pytest.mark.parametrize("server", ["", "build-1"])
def test_bad_input_is_invalid_argument(hub: hub_pb2_grpc.HubServiceStub, server: str) -> None:
    create(hub, "valid", server, command="cat")
    calls = [
        (
            lambda: hub.GetScreen(
                hub_pb2.GetScreenRequest(name="valid", server=server, format=99),  # type: ignore[arg-type]
                timeout=RPC_TIMEOUT,
            ),
            "INVALID_FORMAT",
        ),
        (
            lambda: hub.GetScrollback(
                hub_pb2.GetScrollbackRequest(name="valid", server=server, format=7),  # type: ignore[arg-type]
                timeout=RPC_TIMEOUT,
            ),
            "INVALID_FORMAT",
        ),
        (
            lambda: hub.AwaitIdle(
                hub_pb2.AwaitIdleRequest(name="valid", server=server, format=3),  # type: ignore[arg-type]
                timeout=RPC_TIMEOUT,
            ),
            "INVALID_FORMAT",
        ),
        (lambda: race_once(hub, server=server, format=99), "INVALID_FORMAT"),
        (
            lambda: hub.GetSession(
                hub_pb2.GetSessionRequest(name="bad name!", server=server), timeout=RPC_TIMEOUT
            ),
            "INVALID_SESSION_NAME",
        ),
        (
            lambda: hub.SendInput(
                hub_pb2.SendInputRequest(name="", server=server, data=b"x"), timeout=RPC_TIMEOUT
            ),
            "INVALID_SESSION_NAME",
        ),
        (
            lambda: hub.ListSessions(
                hub_pb2.ListSessionsRequest(server=server, tags=[""]), timeout=RPC_TIMEOUT
            ),
            "INVALID_TAG",
        ),
        (lambda: race_once(hub, server=server, tags=["no good"]), "INVALID_TAG"),
        (lambda: race_once(hub, server=server, last_session="a b"), "INVALID_SESSION_NAME"),
    ]
    for call, reason in calls:
        message = expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, reason)
        assert message
    kill(hub, "valid", server)


# -- forwarded calls stay on their backend -------------------------------------------


def add(hub: hub_pb2_grpc.HubServiceStub, url: str) -> None:
    added = hub.AddServer(hub_pb2.AddServerRequest(address=url, wait=True), timeout=RPC_TIMEOUT)
    assert added.server.health == hub_pb2.SERVER_HEALTH_HEALTHY, added


def test_chained_and_mutual_hubs_race_only_their_own_backends(tmp_path: Path) -> None:
    procs = {
        name: ServerProc(name, "--config", str(tmp_path / f"{name}.toml")).start()
        for name in ("hubA", "hubB", "hubC")
    }
    channels = []
    try:
        stubs = {}
        for name, proc in procs.items():
            channel, stubs[name] = stub(proc.addr)
            channels.append(channel)
        add(stubs["hubA"], procs["hubB"].url)
        add(stubs["hubB"], procs["hubC"].url)
        create(stubs["hubC"], "only-on-C", command="cat", tags=["chain"])
        create(stubs["hubB"], "on-B", command="cat", tags=["chain"])
        # Made on B directly, not through A: A learns of it from B's Link event.
        wait_until(
            lambda: (
                [
                    s.name
                    for s in stubs["hubA"]
                    .ListSessions(hub_pb2.ListSessionsRequest(tags=["chain"]), timeout=RPC_TIMEOUT)
                    .sessions
                ]
                == ["on-B"]
            ),
            what="hubA to list on-B",
        )
        # A's race covers A and its backend B, never B's own backend C.
        stream = stubs["hubA"].RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["chain"], timeout_ms=0, max_wait_ms=1500),
            timeout=RPC_TIMEOUT,
        )
        seen = []
        with pytest.raises(grpc.RpcError) as ended:
            for response in stream:
                seen.append((response.idle.server, response.idle.session))
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        assert seen == [("hubB", "on-B")]
        # Calls by name do not reach through B either.
        expect_error(
            lambda: stubs["hubA"].GetScreen(
                hub_pb2.GetScreenRequest(name="only-on-C"), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
        )
        # Mutual registration: a race stays on hubA; it opens none on its
        # backends (it asks B for B's own settled session with AwaitIdle).
        add(stubs["hubB"], procs["hubA"].url)
        stream = stubs["hubA"].RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["chain"], timeout_ms=0, max_wait_ms=30_000),
            timeout=RPC_TIMEOUT,
        )
        next(iter(stream))
        time.sleep(1.0)
        races = {
            name: s.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT).stats.races
            for name, s in stubs.items()
        }
        stream.cancel()
        assert races == {"hubA": 1, "hubB": 0, "hubC": 0}, races
        assert server_entry(stubs["hubB"], "hubA").health == hub_pb2.SERVER_HEALTH_HEALTHY
    finally:
        for channel in channels:
            channel.close()
        for proc in procs.values():
            proc.stop()


def test_send_input_generation_then_idle_sees_the_output(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    """The loop any client writes: pass SendInput's generation as last_generation."""
    create(hub, "loop", "build-2", command="bash --norc --noprofile")
    for i in range(20):
        generation = send(hub, "loop", "", f"echo mark-{i}\n")
        idle = await_idle(hub, "loop", last=generation, timeout_ms=100)
        assert any(line == f"mark-{i}" for line in idle.screen.lines), idle.screen.lines
    kill(hub, "loop")
