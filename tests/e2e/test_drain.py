"""Graceful drain (``--drain``): after SIGTERM a backend keeps serving its
sessions, refuses new ones, and its hub sends it none; a second signal stops
it at once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.calls import RPC_TIMEOUT, await_idle, create, expect_error, send
from tests.cluster import Cluster, wait_until
from tests.procs import assert_no_traceback, error_reason, stub
from wsh.v1 import hub_pb2

pytestmark = pytest.mark.e2e

# Long enough that the test never sees it end on its own.
DRAIN_S = 120


class Draining(Cluster):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, backends=("build-1",))
        backend = self.backends["build-1"]
        backend.args = (*backend.args, "--drain", str(DRAIN_S))


@pytest.fixture
def draining(tmp_path: Path) -> Iterator[Draining]:
    with Draining(tmp_path) as running:
        yield running


def refused_for_draining(call: object) -> bool:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as err:
        return error_reason(err) == "SERVER_DRAINING"
    return False


def test_a_draining_backend_keeps_its_sessions_and_takes_no_new_ones(
    draining: Draining,
) -> None:
    hub = draining.stub
    assert hub is not None
    backend = draining.backends["build-1"]
    create(hub, "kept", server="build-1")
    assert backend.proc is not None
    backend.proc.send_signal(signal.SIGTERM)

    new = hub_pb2.CreateSessionRequest(name="new", server="build-1", command="cat")
    wait_until(
        lambda: refused_for_draining(lambda: hub.CreateSession(new, timeout=RPC_TIMEOUT)),
        timeout=10,
        what="the hub to refuse new sessions on the draining backend",
    )
    message = expect_error(
        lambda: hub.CreateSession(new, timeout=RPC_TIMEOUT),
        grpc.StatusCode.UNAVAILABLE,
        "SERVER_DRAINING",
    )
    assert "build-1" in message
    # The session there goes on: input, waits and screens through the hub.
    gen = send(hub, "kept", "", "echo still-here\n")
    idle = await_idle(hub, "kept", last=gen)
    assert any("still-here" in line for line in idle.screen.lines), idle.screen.lines
    listed = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT)
    assert [s.name for s in listed.sessions] == ["kept"] and not listed.missing_servers

    channel, direct = stub(backend.addr)
    with channel:
        # Load balancers and meshes see it leave; a client reaching it
        # directly is refused a new session too.
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        expect_error(
            lambda: direct.CreateSession(
                hub_pb2.CreateSessionRequest(name="direct"), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.UNAVAILABLE,
            "SERVER_DRAINING",
        )

    # A second signal ends the drain at once (DRAIN_S is far off).
    started = time.monotonic()
    assert backend.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - started < DRAIN_S
    assert_no_traceback((draining.tmp / "build-1.log").read_text())
