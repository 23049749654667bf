"""End-to-end: READY waits and races across a hub and two backends."""

from __future__ import annotations

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, create, expect_error, kill, send
from tests.cluster import wait_until
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e

BASH = "env PS1='$ ' bash --norc --noprofile -i"
# The fallback quiet time of READY waits: never reached here.
NO_FALLBACK_MS = 60_000


@pytest.fixture(scope="module")
def hub(cluster_hub: hub_pb2_grpc.HubServiceStub) -> hub_pb2_grpc.HubServiceStub:
    return cluster_hub


def await_ready(
    hub: hub_pb2_grpc.HubServiceStub, name: str, last: int | None = None
) -> types_pb2.Idle:
    req = hub_pb2.AwaitIdleRequest(
        name=name,
        timeout_ms=NO_FALLBACK_MS,
        max_wait_ms=20_000,
        mode=hub_pb2.IDLE_MODE_READY,
    )
    if last is not None:
        req.last_generation = last
    return hub.AwaitIdle(req, timeout=30).idle


def lines(idle: types_pb2.Idle) -> list[str]:
    return [line.rstrip() for line in idle.screen.lines if line.strip()]


def test_slow_and_fast_jobs_race_ready_through_the_hub(hub: hub_pb2_grpc.HubServiceStub) -> None:
    # The case: a quiet race reported job1 after 0.3 s of quiet
    # while its `sleep` still ran. READY reports each job once it finished.
    jobs = {"job1": ("build-1", 3, "SLOW"), "job2": ("build-2", 1, "FAST"), "job3": ("", 2, "MID")}
    for name, (server, _, _) in jobs.items():
        create(hub, name, server, command=BASH, tags=["ready-race"])
        await_ready(hub, name)
    for name, (server, seconds, word) in jobs.items():
        send(hub, name, server, f"sleep {seconds}; echo {word}\n")
    stream = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(
            tags=["ready-race"],
            timeout_ms=300,
            max_wait_ms=20_000,
            mode=hub_pb2.IDLE_MODE_READY,
        ),
        timeout=30,
    )
    try:
        order = []
        for response in stream:
            idle = response.idle
            word = jobs[idle.session][2]
            assert lines(idle)[-2:] == [word, "$"], (idle.session, lines(idle))
            assert idle.ready and idle.foreground == "bash" and not idle.ready_unknown
            order.append(idle.session)
            if len(order) == 3:
                break
        assert order == ["job2", "job3", "job1"]
    finally:
        stream.cancel()
        for name, (server, _, _) in jobs.items():
            kill(hub, name, server)


def test_await_ready_on_a_backend_and_foreground_in_every_mode(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    create(hub, "reader", "build-1", command="sleep 1; echo done; exec cat")
    try:
        idle = await_ready(hub, "reader")
        assert idle.server == "build-1"
        assert (idle.ready, idle.foreground) == (True, "cat")
        assert "done" in lines(idle)
        # A quiet wait tells the foreground too.
        generation = send(hub, "reader", "build-1", "x")
        quiet = hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(name="reader", timeout_ms=200, last_generation=generation),
            timeout=RPC_TIMEOUT,
        ).idle
        assert (quiet.ready, quiet.foreground) == (True, "cat")
    finally:
        kill(hub, "reader", "build-1")


def test_list_sessions_shows_foreground_of_backend_sessions(
    hub: hub_pb2_grpc.HubServiceStub,
) -> None:
    create(hub, "lister", "build-2", command=BASH)
    create(hub, "lister-here", "", command=BASH)

    def shown(name: str) -> tuple[bool, str]:
        sessions = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT).sessions
        entry = next(s for s in sessions if s.name == name)
        return entry.ready, entry.foreground

    try:
        for name in ("lister", "lister-here"):
            await_ready(hub, name)
            wait_until(lambda n=name: shown(n) == (True, "bash"), what=f"{name} ready in bash")
            send(hub, name, "", "exec sleep 30\n")
            wait_until(lambda n=name: shown(n) == (False, "sleep"), what=f"{name} busy in sleep")
    finally:
        kill(hub, "lister", "build-2")
        kill(hub, "lister-here")


def test_unknown_mode_is_refused(hub: hub_pb2_grpc.HubServiceStub) -> None:
    create(hub, "moded", "build-1")
    try:
        expect_error(
            lambda: hub.AwaitIdle(
                hub_pb2.AwaitIdleRequest(name="moded", timeout_ms=100, mode=7), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_MODE",
        )
        expect_error(
            lambda: next(
                iter(hub.RaceIdle(hub_pb2.RaceIdleRequest(timeout_ms=100, mode=7), timeout=10))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_MODE",
        )
    finally:
        kill(hub, "moded", "build-1")
