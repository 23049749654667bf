"""The hub's Link to one backend, in process: handshake, inventory, heartbeats, silence.

A real BackendService (over a real SessionManager) or a scripted one runs on
a loopback port inside the test's event loop; timing constants are shortened
so that heartbeat and silence rules show in well under a second.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from wsh.api import backend as backend_module
from wsh.api.backend import BackendServicer
from wsh.api.limits import StreamLimits
from wsh.federation import link as link_module
from wsh.federation.address import parse_backend_address
from wsh.federation.ip_access import IpAccess
from wsh.federation.link import BackendLink, TlsFiles
from wsh.federation.registry import Backend, Health, Registry
from wsh.identity import ServerIdentity
from wsh.server import GRPC_SERVER_OPTIONS
from wsh.sessions.manager import SessionManager
from wsh.v1 import backend_pb2, backend_pb2_grpc

WAIT_S = 10.0


async def until(registry: Registry, done: Callable[[], bool]) -> None:
    """Wait on the registry's change counter until ``done()``."""
    async with asyncio.timeout(WAIT_S):
        seen = registry.changes.version
        while not done():
            seen = await registry.changes.wait(seen)


@pytest.fixture(autouse=True)
def fast_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_module, "HEARTBEAT_INTERVAL_S", 0.05)
    monkeypatch.setattr(link_module, "HEARTBEAT_MISS_S", 0.4)


async def serve(servicer: backend_pb2_grpc.BackendServiceServicer) -> tuple[grpc.aio.Server, int]:
    # A wsh server's options: gRPC's defaults end a Link with "Too many pings".
    server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
    backend_pb2_grpc.add_BackendServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def linked(port: int, registry: Registry, identity: ServerIdentity) -> BackendLink:
    backend = Backend(address=parse_backend_address(f"http://127.0.0.1:{port}"))
    registry.add(backend)
    link = BackendLink(backend, registry, identity, IpAccess, TlsFiles())
    link.start()
    return link


@pytest.fixture
async def real_backend() -> AsyncIterator[tuple[SessionManager, int]]:
    sessions = SessionManager("be")
    server, port = await serve(BackendServicer(ServerIdentity("be"), sessions, StreamLimits()))
    try:
        yield sessions, port
    finally:
        await sessions.close_all()
        await server.stop(None)


async def test_handshake_inventory_events_and_heartbeats(
    real_backend: tuple[SessionManager, int],
) -> None:
    sessions, port = real_backend
    sessions.create(name="before", command="cat", tags=["t"])
    registry = Registry("hub")
    link = await linked(port, registry, ServerIdentity("hub"))
    backend = registry.find(address=f"http://127.0.0.1:{port}")
    try:
        await until(registry, lambda: backend.healthy)
        assert backend.hostname == "be" and set(backend.sessions) == {"before"}
        sessions.create(name="after", command="cat")
        await until(registry, lambda: "after" in backend.sessions)
        await sessions.kill("before")
        await until(registry, lambda: "before" not in backend.sessions)
        # A few heartbeat rounds later the round trip is known.
        await asyncio.sleep(link_module.HEARTBEAT_INTERVAL_S * 10)
        assert backend.latency_ms > 0 and backend.healthy
    finally:
        await link.close()


class Scripted(backend_pb2_grpc.BackendServiceServicer):
    """A BackendService that says who it is, lists nothing, then does ``then``."""

    def __init__(self, identity: ServerIdentity, then: Callable[[], Awaitable[None]]) -> None:
        self.identity = identity
        self.then = then

    async def Link(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        ident = self.identity
        yield backend_pb2.LinkResponse(
            identity=backend_pb2.Identity(
                hostname=ident.hostname, server_id=ident.server_id, version=ident.version
            )
        )
        yield backend_pb2.LinkResponse(inventory=backend_pb2.Inventory())
        await self.then()


async def test_a_silent_backend_is_unavailable_after_the_miss_time() -> None:
    server, port = await serve(Scripted(ServerIdentity("mute"), lambda: asyncio.sleep(3600)))
    registry = Registry("hub")
    link = await linked(port, registry, ServerIdentity("hub"))
    backend = registry.find(address=f"http://127.0.0.1:{port}")
    try:
        await until(registry, lambda: backend.healthy)
        loop = asyncio.get_running_loop()
        healthy_at = loop.time()
        await until(registry, lambda: backend.health is Health.UNAVAILABLE)
        # Silence, not a closed stream: it takes the miss time, and says so.
        assert loop.time() - healthy_at >= link_module.HEARTBEAT_MISS_S * 0.9
        assert "no message" in backend.last_error
    finally:
        await link.close()
        await server.stop(None)


async def test_a_link_back_to_this_hub_is_rejected_for_good() -> None:
    me = ServerIdentity("hub")
    server, port = await serve(Scripted(me, lambda: asyncio.sleep(3600)))
    registry = Registry("hub")
    link = await linked(port, registry, me)
    backend = registry.find(address=f"http://127.0.0.1:{port}")
    try:
        await until(registry, lambda: backend.health is Health.REJECTED)
        assert backend.last_error.startswith("SELF_LOOP")
    finally:
        await link.close()
        await server.stop(None)


async def test_activity_comes_between_heartbeats_and_only_when_it_changed(
    real_backend: tuple[SessionManager, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions, port = real_backend
    # No heartbeat after the first one for the whole test: activity comes on
    # the backend's own schedule.
    monkeypatch.setattr(link_module, "HEARTBEAT_INTERVAL_S", 60.0)
    monkeypatch.setattr(link_module, "HEARTBEAT_MISS_S", 120.0)
    monkeypatch.setattr(backend_module, "ACTIVITY_INTERVAL_S", 0.05)
    session = sessions.create(name="typed", command="cat")
    registry = Registry("hub")
    link = await linked(port, registry, ServerIdentity("hub"))
    backend = registry.find(address=f"http://127.0.0.1:{port}")
    try:
        await until(registry, lambda: backend.healthy)
        async with asyncio.timeout(WAIT_S):
            for _ in itertools.count():  # the first heartbeat's round trip is over
                if backend.latency_ms > 0:
                    break
                await asyncio.sleep(0.01)
        generation = session.send(b"hello\n")
        # Activity changes no inventory, so the registry's counter does not move: poll.
        async with asyncio.timeout(WAIT_S):
            for _ in itertools.count():
                if backend.sessions["typed"].generation >= generation:
                    break
                await asyncio.sleep(0.01)
    finally:
        await link.close()


async def test_an_idle_backend_reports_no_activity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "ACTIVITY_INTERVAL_S", 0.01)
    sessions = SessionManager("be")
    servicer = BackendServicer(ServerIdentity("be"), sessions, StreamLimits())
    session = sessions.create(name="quiet", command="cat")
    pushed: list[backend_pb2.LinkResponse | None] = []
    arrived = asyncio.Event()

    def push(msg: backend_pb2.LinkResponse | None) -> None:
        pushed.append(msg)
        arrived.set()

    reporter = asyncio.get_running_loop().create_task(servicer._report_activity(push))
    try:
        await asyncio.wait_for(arrived.wait(), WAIT_S)  # the new session's first report
        arrived.clear()
        await asyncio.sleep(0.3)  # 30 intervals
        assert len(pushed) == 1, pushed
        generation = session.send(b"x")
        await asyncio.wait_for(arrived.wait(), WAIT_S)
        assert pushed[1] is not None
        [activity] = pushed[1].heartbeat.activity
        assert activity.name == "quiet" and activity.generation >= generation
        assert pushed[1].heartbeat.ack_seq == 0
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await sessions.close_all()
