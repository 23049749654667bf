"""Protobuf built once: the Idle a settle renders (readiness and foreground in
every mode), and this server's and its backends' sessions as listed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.sessions.test_manager import WAIT_S, until
from wsh import convert
from wsh.api.render import InventoryRenderer, ScreenRenderer, SessionRenderer
from wsh.federation.address import parse_backend_address
from wsh.federation.registry import Backend
from wsh.sessions.info import SessionInfo, SessionState
from wsh.sessions.manager import SessionManager
from wsh.terminal.foreground import UNKNOWN, Foreground, Readiness
from wsh.v1 import hub_pb2, types_pb2


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    sessions = SessionManager("unit")
    try:
        yield sessions
    finally:
        await asyncio.wait_for(sessions.close_all(), WAIT_S)


async def test_idle_tells_ready_foreground_and_unknown(manager: SessionManager) -> None:
    session = manager.create(command="cat")
    render = ScreenRenderer()
    generation = session.activity.generation
    ready = render.idle(session, "h", generation, False, Foreground(Readiness.READY, "cat"))
    assert (ready.ready, ready.foreground, ready.ready_unknown) == (True, "cat", False)
    # The shared Idle is rebuilt when the foreground differs, not changed in place.
    unknown = render.idle(session, "h", generation, False, UNKNOWN)
    assert (unknown.ready, unknown.foreground, unknown.ready_unknown) == (False, "", True)
    assert (ready.ready, ready.foreground) == (True, "cat")
    gone = render.idle(session, "h", generation, False, None)
    assert (gone.ready, gone.foreground, gone.ready_unknown) == (False, "", False)


def listed_as_info(
    render: SessionRenderer, manager: SessionManager
) -> hub_pb2.ListSessionsResponse:
    """What the renderer lists, checked against a fresh conversion of each session."""
    listed = render.listing(frozenset())
    for pb, session in zip(listed.sessions, manager.matching(), strict=True):
        fresh = convert.session_to_pb(manager.info(session))
        assert abs(pb.last_activity_ms - fresh.last_activity_ms) < 1000
        fresh.last_activity_ms = pb.last_activity_ms
        assert pb == fresh
    return listed


async def test_listing_is_reused_until_what_it_shows_changes(
    manager: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = SessionRenderer(manager)
    cat = manager.create(name="a-cat", command="cat", tags=["t"])
    manager.create(name="b-sh", command="sleep 60")
    # Nothing changed: the same listing, not conversions again.
    assert listed_as_info(render, manager) is listed_as_info(render, manager)

    changes = [
        lambda: manager.update("a-cat", add_tags=["u"]),
        lambda: manager.update("a-cat", new_name="a-kitten"),
        lambda: manager.resize("a-kitten", 30, 90),
        lambda: cat.send(b"x"),  # the generation moves
        lambda: monkeypatch.setattr(cat, "foreground", lambda: Foreground(Readiness.READY, "vim")),
    ]
    for change in changes:
        before = listed_as_info(render, manager)
        change()
        after = listed_as_info(render, manager)
        assert after is not before
    first = after.sessions[0]
    assert (first.name, first.tags, first.rows, first.foreground) == (
        "a-kitten",
        ["t", "u"],
        30,
        "vim",
    )

    # A new session under an old name is not the old one's message.
    await manager.kill("a-kitten")
    again = manager.create(name="a-kitten", command="cat")
    assert listed_as_info(render, manager).sessions[0].pid == again.process.pid
    assert [s.name for s in render.listing(frozenset(["t"])).sessions] == []
    assert [s.name for s in render.listing(frozenset(["t", "x"])).sessions] == []


async def test_listing_shows_an_exit_and_refreshes_idle_time(manager: SessionManager) -> None:
    render = SessionRenderer(manager)
    session = manager.create(name="ends", command="read x; exit 3")
    before = listed_as_info(render, manager).sessions[0].state
    session.send(b"\n")
    await until(manager, lambda: not session.process.running)
    assert listed_as_info(render, manager).sessions[0].exit_code == 3
    idle_before = render.listing(frozenset()).sessions[0].last_activity_ms
    await asyncio.sleep(0.05)
    assert render.listing(frozenset()).sessions[0].last_activity_ms >= idle_before + 50
    assert before == types_pb2.SESSION_STATE_RUNNING


def remote_info(name: str, generation: int = 1, tags: tuple[str, ...] = ()) -> SessionInfo:
    return SessionInfo(
        name=name,
        server="be",
        tags=tags,
        command="bash",
        pid=7,
        rows=24,
        cols=80,
        state=SessionState.RUNNING,
        exit_code=None,
        generation=generation,
        created_at=1.0,
        last_activity_ms=5_000,
        cwd="/",
    )


def test_backend_listing_is_reused_until_its_inventory_changes() -> None:
    backend = Backend(address=parse_backend_address("http://127.0.0.1:1"))
    backend.upsert(remote_info("a", tags=("t",)))
    backend.upsert(remote_info("b"))
    render = InventoryRenderer()
    every, tagged = frozenset(), frozenset(["t"])
    listed = render.listing(backend, every)
    assert [s.name for s in listed.sessions] == ["a", "b"]
    assert 5_000 <= listed.sessions[0].last_activity_ms < 6_000
    assert render.listing(backend, every) is listed
    assert [s.name for s in render.listing(backend, tagged).sessions] == ["a"]
    assert render.listing(backend, every) is listed  # one listing per tag set

    changes = [
        lambda: backend.record_activity("b", 3, 0, True, "vim"),
        lambda: backend.transition("b", 4, True, 0),
        lambda: backend.upsert(remote_info("c")),
        lambda: backend.upsert(remote_info("d"), previous_name="c"),
        lambda: backend.remove("a"),
    ]
    for change in changes:
        before = render.listing(backend, every)
        change()
        assert render.listing(backend, every) is not before
    listed = render.listing(backend, every)
    assert [(s.name, s.generation, s.foreground) for s in listed.sessions] == [
        ("b", 4, "vim"),
        ("d", 1, ""),
    ]
    assert listed.sessions[0].last_activity_ms < 1_000
    assert [s.name for s in render.listing(backend, tagged).sessions] == []
    backend.clear_sessions()
    assert list(render.listing(backend, every).sessions) == []
