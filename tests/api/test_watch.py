"""Unit tests of WatchSessions' fan-out: snapshots, filters, slow watchers, shutdown."""

from __future__ import annotations

import pytest

from wsh.api.watch import Watcher, Watches
from wsh.errors import Kind, WshError
from wsh.federation.address import parse_backend_address
from wsh.federation.registry import Backend, Registry
from wsh.sessions.changes import upserted
from wsh.sessions.info import SessionInfo, SessionState
from wsh.sessions.manager import SessionManager
from wsh.v1 import hub_pb2

W = hub_pb2


def info(name: str) -> SessionInfo:
    return SessionInfo(name, "b", (), "sh", 1, 24, 80, SessionState.RUNNING, None, 1, 0.0, 0, "/")


def setup() -> tuple[Watches, Registry, Backend]:
    registry = Registry("here")
    watches = Watches(
        "here",
        SessionManager("here"),
        registry,
        lambda: hub_pb2.Server(hostname="here"),
        lambda backend: hub_pb2.Server(hostname=backend.hostname),
    )
    backend = Backend(address=parse_backend_address("http://127.0.0.1:1"), hostname="b")
    registry.add(backend)
    return watches, registry, backend


def create(registry: Registry, backend: Backend, name: str) -> None:
    """What the Link does for a session the backend announces."""
    backend.upsert(info(name))
    for change in upserted(None, backend.sessions[name]):
        registry.publish(change)


async def test_a_slow_watcher_is_resynchronised_and_never_holds_more_than_its_limit() -> None:
    watches, registry, backend = setup()
    watcher = Watcher("", frozenset(), limit=4)
    stream = watches.stream(watcher)
    first = [await anext(stream) for _ in range(3)]
    assert [(e.event, e.server) for e in first] == [
        (W.WATCH_EVENT_SERVER, "here"),
        (W.WATCH_EVENT_SERVER, "b"),
        (W.WATCH_EVENT_SYNCED, ""),
    ]
    assert not any(e.resync for e in first)
    for n in range(10):
        create(registry, backend, f"s{n}")
        assert watcher.pending <= 4
    # Fell behind: a new snapshot, flagged, instead of the events it missed.
    again = []
    while (event := await anext(stream)).event != W.WATCH_EVENT_SYNCED:
        again.append(event)
    assert all(e.resync and e.resyncs == 1 for e in [*again, event])
    assert sorted(e.session for e in again if e.event == W.WATCH_EVENT_SESSION) == sorted(
        f"s{n}" for n in range(10)
    )
    # Then events again, not flagged.
    create(registry, backend, "late")
    late = await anext(stream)
    assert (late.event, late.session, late.resync) == (W.WATCH_EVENT_SESSION_CREATED, "late", False)
    await stream.aclose()
    assert len(watches) == 0


async def test_filters_and_shutdown() -> None:
    watches, registry, backend = setup()
    only_here = Watcher("here", frozenset())
    stream = watches.stream(only_here)
    snapshot = [await anext(stream) for _ in range(2)]
    assert [e.event for e in snapshot] == [W.WATCH_EVENT_SERVER, W.WATCH_EVENT_SYNCED]
    create(registry, backend, "elsewhere")
    assert only_here.pending == 0
    watches.fail(WshError(Kind.UNAVAILABLE, "SERVER_SHUTTING_DOWN", "going"))
    with pytest.raises(WshError):
        await anext(stream)
    watches.close()
