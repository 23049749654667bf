"""End-to-end: cluster races answered from what the hub knows, and skip lists.

Backends push on their Link which sessions have settled; a race asks only
the backends holding a settled session in its scope, once per settle. A
race-first loop passes what it collected as ``exclude`` and finishes N
sessions in N calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, create, expect_error, kill, send
from tests.cluster import Cluster, wait_until
from tests.fakes import FakeBackend, session_dict
from tests.procs import error_metadata, error_reason
from wsh.client import Client
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(cluster_hub: hub_pb2_grpc.HubServiceStub) -> hub_pb2_grpc.HubServiceStub:
    return cluster_hub


def first(
    hub: hub_pb2_grpc.HubServiceStub, timeout: float = RPC_TIMEOUT, **fields: object
) -> hub_pb2.RaceIdleResponse:
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(**fields),  # type: ignore[arg-type]
        timeout=timeout,
    )
    try:
        return next(iter(stream))
    finally:
        stream.cancel()


def exclusion(idle: hub_pb2.RaceIdleResponse) -> hub_pb2.RaceExclusion:
    return hub_pb2.RaceExclusion(
        server=idle.idle.server, session=idle.idle.session, generation=idle.idle.generation
    )


def test_race_first_with_exclusions_collects_each_session_once(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    placed = {("hub", "x-hub"), ("build-1", "x-one"), ("build-2", "x-two")}
    for server, name in placed:
        create(hub, name, server if server != "hub" else "", command="cat", tags=["xtag"])
    collected: list[hub_pb2.RaceIdleResponse] = []
    for _ in range(3):
        collected.append(
            first(hub, tags=["xtag"], timeout_ms=100, exclude=[exclusion(r) for r in collected])
        )
    assert {(r.idle.server, r.idle.session) for r in collected} == placed
    # All excluded: nothing settles until one of them moves past its generation.
    everything = [exclusion(r) for r in collected]
    expect_error(
        lambda: first(hub, tags=["xtag"], timeout_ms=100, max_wait_ms=500, exclude=everything),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
    )
    moved = send(hub, "x-two", "build-2", "again\n")
    again = first(hub, tags=["xtag"], timeout_ms=100, exclude=everything)
    assert (again.idle.server, again.idle.session) == ("build-2", "x-two")
    assert again.idle.generation >= moved
    # An exclusion without a server is resolved by the session's name.
    by_name = [e for e in everything if e.session != "x-one"]
    by_name.append(hub_pb2.RaceExclusion(session="x-one", generation=2**62))
    by_name = [e for e in by_name if e.session != "x-two"] + [exclusion(again)]
    expect_error(
        lambda: first(hub, tags=["xtag"], timeout_ms=100, max_wait_ms=500, exclude=by_name),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
    )
    for server, name in placed:
        kill(hub, name, server if server != "hub" else "")


def test_exited_sessions_excluded_at_their_end_leave_the_race(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    create(hub, "x-done", "build-1", command="cat", tags=["xdone"])
    running = first(hub, tags=["xdone"], timeout_ms=0)
    send(hub, "x-done", "build-1", "\x04")  # end of input: cat exits
    wait_until(
        lambda: (
            hub.GetSession(
                hub_pb2.GetSessionRequest(name="x-done"), timeout=RPC_TIMEOUT
            ).session.state
            == types_pb2.SESSION_STATE_EXITED
        ),
        10,
        "the session to exit",
    )
    final = first(hub, tags=["xdone"], timeout_ms=0, exclude=[exclusion(running)])
    assert final.idle.exit_code == 0 and final.idle.HasField("exit_code")
    expect_error(
        lambda: first(hub, tags=["xdone"], timeout_ms=0, exclude=[exclusion(final)]),
        grpc.StatusCode.NOT_FOUND,
        "NO_SESSIONS",
    )
    kill(hub, "x-done", "build-1")


def test_too_many_exclusions_are_refused(hub: hub_pb2_grpc.HubServiceStub) -> None:
    many = [hub_pb2.RaceExclusion(server="build-1", session=f"s{i}") for i in range(10_001)]
    expect_error(
        lambda: first(hub, exclude=many),
        grpc.StatusCode.INVALID_ARGUMENT,
        "TOO_MANY_EXCLUSIONS",
    )
    expect_error(
        lambda: first(hub, exclude=[hub_pb2.RaceExclusion(session="bad name")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_SESSION_NAME",
    )


def test_a_session_is_raced_once_quiet_for_the_whole_timeout(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    create(
        hub,
        "x-slow",
        "build-2",
        # Settles (for the backend) between ticks, but never for 300 ms.
        command="for i in $(seq 12); do echo tick; sleep 0.1; done; echo finished; exec cat",
        tags=["xslow"],
    )
    settled = first(hub, tags=["xslow"], timeout_ms=300)
    assert "finished" in "\n".join(settled.idle.screen.lines)
    kill(hub, "x-slow", "build-2")


@pytest.fixture
def bystanders(tmp_path: Path) -> Iterator[tuple[Cluster, FakeBackend, FakeBackend]]:
    """A hub with one real backend and two fake ones that record every call."""
    with Cluster(tmp_path, backends=("real-1",)) as cluster:
        fakes = [
            FakeBackend(
                tmp_path,
                hostname,
                sessions=[session_dict(f"{hostname}-s", tags=[tag])],
            ).start()
            for hostname, tag in (("fake-in", "wanted"), ("fake-out", "other"))
        ]
        try:
            assert cluster.stub is not None
            for fake in fakes:
                cluster.stub.AddServer(
                    hub_pb2.AddServerRequest(address=fake.url, wait=True, wait_timeout_ms=8000),
                    timeout=RPC_TIMEOUT,
                )
            yield cluster, fakes[0], fakes[1]
        finally:
            for fake in fakes:
                fake.stop()


def test_races_ask_only_backends_with_settled_sessions_in_scope(
    bystanders: tuple[Cluster, FakeBackend, FakeBackend],
) -> None:
    cluster, inside, outside = bystanders
    hub = cluster.stub
    assert hub is not None
    create(hub, "wanted-real", "real-1", command="cat", tags=["wanted"])
    seen = set()
    for _ in range(5):
        got = first(hub, tags=["wanted"], timeout_ms=100, exclude=[])
        seen.add((got.idle.server, got.idle.session))
        # Scoped to the real backend: the fakes are not asked anything.
        scoped = first(hub, tags=["wanted"], server="real-1", timeout_ms=100)
        assert scoped.idle.server == "real-1"
    assert seen <= {("real-1", "wanted-real"), ("fake-in", "fake-in-s")}, seen
    # No race opens a stream to any backend; the one holding a settled
    # session in scope is asked for it, the other never.
    assert "RaceIdle" not in inside.calls()
    assert outside.calls() == []
    both = hub.RaceIdle(hub_pb2.RaceIdleRequest(tags=["wanted"], timeout_ms=100), timeout=10)
    try:
        servers = {next(both).idle.server for _ in range(2)}
    finally:
        both.cancel()
    assert servers == {"real-1", "fake-in"}
    assert inside.calls().count("AwaitIdle") >= 1
    assert outside.calls() == []


def test_max_results_ends_the_stream_ok_and_timeouts_say_their_bound(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    for server, name in (("", "m-hub"), ("build-1", "m-one"), ("build-2", "m-two")):
        create(hub, name, server, command="cat", tags=["mtag"])
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["mtag"], timeout_ms=100, max_results=2),
        timeout=RPC_TIMEOUT,
    )
    got = [(r.idle.server, r.idle.session) for r in stream]  # ends without an error
    assert len(got) == 2 and len(set(got)) == 2, got
    assert stream.code() == grpc.StatusCode.OK
    # Without max_results, silence past max_wait_ms ends it: IDLE_TIMEOUT
    # with the bound in its metadata.
    everything = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["mtag"], timeout_ms=100, max_wait_ms=700),
        timeout=RPC_TIMEOUT,
    )
    with pytest.raises(grpc.RpcError) as ended:
        for _ in everything:
            pass
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    metadata = error_metadata(ended.value)
    assert (error_reason(ended.value), metadata) == ("IDLE_TIMEOUT", {"max_wait_ms": "700"})
    # Waiting for activity after the current generation, which never comes.
    current = hub.GetSession(
        hub_pb2.GetSessionRequest(server="build-1", name="m-one"), timeout=RPC_TIMEOUT
    ).session.generation
    with pytest.raises(grpc.RpcError) as waited:
        hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(
                server="build-1", name="m-one", max_wait_ms=300, last_generation=current
            ),
            timeout=RPC_TIMEOUT,
        )
    assert error_metadata(waited.value) == {"max_wait_ms": "300", "session": "m-one"}
    for server, name in (("", "m-hub"), ("build-1", "m-one"), ("build-2", "m-two")):
        kill(hub, name, server)


def test_sdk_race_first_loop_and_cli_exclude_collect_each_session_once(
    hub: hub_pb2_grpc.HubServiceStub, cluster: Cluster
) -> None:
    placed = {("hub", "sdk-hub"), ("build-1", "sdk-one"), ("build-2", "sdk-two")}
    for server, name in placed:
        create(hub, name, server if server != "hub" else "", command="cat", tags=["sdktag"])
    with Client(cluster.hub.addr, timeout=RPC_TIMEOUT) as wsh:
        collected: list[types_pb2.Idle] = []
        for _ in placed:
            collected.append(wsh.race_first(tags=["sdktag"], timeout_ms=100, exclude=collected))
        assert {(i.server, i.session) for i in collected} == placed
        # Tuples too; one session left in the race.
        left = collected.pop()
        tuples = [(i.server, i.session, i.generation) for i in collected]
        again = wsh.race_first(tags=["sdktag"], timeout_ms=100, exclude=tuples)
        assert (again.server, again.session) == (left.server, left.session)
    # The CLI takes them as SERVER/SESSION@GEN.
    done = subprocess.run(
        [sys.executable, "-m", "wsh", "--addr", cluster.hub.addr, "--json", "race"]
        + ["--tag", "sdktag", "--quiet-ms", "100", "--max-wait-ms", "1000"]
        + [f"--exclude={s}/{n}@{g}" for s, n, g in tuples]
        + [f"--exclude={left.server}/{left.session}@{left.generation}"],
        capture_output=True,
        text=True,
        timeout=RPC_TIMEOUT,
        check=False,
    )
    assert done.returncode == 4 and json.loads(done.stderr)["reason"] == "IDLE_TIMEOUT", done
    for server, name in placed:
        kill(hub, name, server if server != "hub" else "")
