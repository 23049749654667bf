"""The Idle a settle renders: readiness and foreground in every mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.sessions.test_manager import WAIT_S
from wsh.api.render import ScreenRenderer
from wsh.sessions.manager import SessionManager
from wsh.terminal.foreground import UNKNOWN, Foreground, Readiness


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
