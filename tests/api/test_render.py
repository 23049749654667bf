"""Protobuf built once: the Idle a settle renders (readiness and foreground in
every mode) and this server's sessions as listed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.sessions.test_manager import WAIT_S, until
from wsh import convert
from wsh.api.render import ScreenRenderer, SessionRenderer
from wsh.sessions.manager import SessionManager
from wsh.terminal.foreground import UNKNOWN, Foreground, Readiness
from wsh.v1 import types_pb2


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


def listed_as_info(render: SessionRenderer, manager: SessionManager) -> list[types_pb2.Session]:
    """What the renderer lists, checked against a fresh conversion of each session."""
    listed = render.listing(frozenset())
    for pb, session in zip(listed, manager.matching(), strict=True):
        fresh = convert.session_to_pb(manager.info(session))
        assert abs(pb.last_activity_ms - fresh.last_activity_ms) < 1000
        fresh.last_activity_ms = pb.last_activity_ms
        assert pb == fresh
    return listed


async def test_listing_reuses_messages_until_what_they_show_changes(
    manager: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = SessionRenderer(manager)
    cat = manager.create(name="a-cat", command="cat", tags=["t"])
    manager.create(name="b-sh", command="sleep 60")
    first = listed_as_info(render, manager)
    # Nothing changed: the same messages, not conversions again.
    assert all(a is b for a, b in zip(first, listed_as_info(render, manager), strict=True))

    changes = [
        lambda: manager.update("a-cat", add_tags=["u"]),
        lambda: manager.update("a-cat", new_name="a-kitten"),
        lambda: manager.resize("a-kitten", 30, 90),
        lambda: cat.send(b"x"),  # the generation moves
        lambda: monkeypatch.setattr(cat, "foreground", lambda: Foreground(Readiness.READY, "vim")),
    ]
    for change in changes:
        before = listed_as_info(render, manager)[0]
        change()
        after = listed_as_info(render, manager)[0]
        assert after is not before
    assert (after.name, after.tags, after.rows, after.foreground) == (
        "a-kitten",
        ["t", "u"],
        30,
        "vim",
    )

    # A new session under an old name is not the old one's message.
    await manager.kill("a-kitten")
    again = manager.create(name="a-kitten", command="cat")
    assert listed_as_info(render, manager)[0].pid == again.process.pid
    assert [s.name for s in render.listing(frozenset(["t"]))] == []


async def test_listing_shows_an_exit_and_refreshes_idle_time(manager: SessionManager) -> None:
    render = SessionRenderer(manager)
    session = manager.create(name="ends", command="read x; exit 3")
    before = listed_as_info(render, manager)[0]
    session.send(b"\n")
    await until(manager, lambda: not session.process.running)
    assert listed_as_info(render, manager)[0].exit_code == 3
    idle_before = render.listing(frozenset())[0].last_activity_ms
    await asyncio.sleep(0.05)
    assert render.listing(frozenset())[0].last_activity_ms >= idle_before + 50
    assert before.state == types_pb2.SESSION_STATE_RUNNING
