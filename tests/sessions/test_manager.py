"""Unit tests of the session manager on real PTYs: naming, limits, updates, exits, events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from wsh.errors import WshError
from wsh.sessions.info import SessionState
from wsh.sessions.manager import ActivityChange, SessionEvent, SessionManager
from wsh.sessions.session import Session

WAIT_S = 10.0


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    sessions = SessionManager("unit", max_sessions=3, exited_retention_s=0.2)
    try:
        yield sessions
    finally:
        await asyncio.wait_for(sessions.close_all(), WAIT_S)


async def until(manager: SessionManager, done: Callable[[], bool]) -> None:
    """Wait, woken by the manager's events (exits, expiries), until ``done()``."""
    changed = asyncio.Event()
    unsubscribe = manager.subscribe(lambda _event: changed.set())
    try:
        async with asyncio.timeout(WAIT_S):
            while not done():
                await changed.wait()
                changed.clear()
    finally:
        unsubscribe()


async def exited(manager: SessionManager, session: Session) -> None:
    await until(manager, lambda: session.state is SessionState.EXITED)


def reason_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(WshError) as err:
        call()
    return err.value.reason


async def test_names_are_picked_checked_and_unique(manager: SessionManager) -> None:
    first = manager.create(command="cat")
    assert first.name == "0"
    named = manager.create(name="job", command="cat", tags=["b", "a", "a"])
    assert named.tags == frozenset({"a", "b"})
    assert reason_of(lambda: manager.create(name="job", command="cat")) == "SESSION_NAME_TAKEN"
    assert reason_of(lambda: manager.create(name="bad name", command="cat")) == (
        "INVALID_SESSION_NAME"
    )
    assert reason_of(lambda: manager.create(tags=[""], command="cat")) == "INVALID_TAG"
    assert reason_of(lambda: manager.get("nope")) == "SESSION_NOT_FOUND"
    assert manager.has("job") and not manager.has("nope")


async def test_the_session_limit_is_enforced(manager: SessionManager) -> None:
    for _ in range(3):
        manager.create(command="cat")
    assert reason_of(lambda: manager.create(command="cat")) == "TOO_MANY_SESSIONS"
    await manager.kill("0")
    manager.create(command="cat")


async def test_bad_spawn_arguments_are_refused(manager: SessionManager) -> None:
    assert reason_of(lambda: manager.create(cwd="/no/such/dir")) == "INVALID_CWD"
    assert reason_of(lambda: manager.create(env={"A=B": "x"})) == "INVALID_ENV"
    assert reason_of(lambda: manager.create(command="a\0b")) == "INVALID_COMMAND"
    assert len(manager) == 0


async def test_update_is_all_or_nothing(manager: SessionManager) -> None:
    manager.create(name="a", command="cat", tags=["x"])
    manager.create(name="b", command="cat")
    assert reason_of(lambda: manager.update("a", new_name="b", add_tags=["y"])) == (
        "SESSION_NAME_TAKEN"
    )
    assert manager.get("a").tags == frozenset({"x"})
    renamed = manager.update("a", new_name="c", add_tags=["y"], remove_tags=["x"])
    assert renamed.name == "c" and renamed.tags == frozenset({"y"})
    assert not manager.has("a") and [s.name for s in manager.matching(["y"])] == ["c"]


async def test_events_follow_every_change(manager: SessionManager) -> None:
    events: list[SessionEvent] = []
    unsubscribe = manager.subscribe(events.append)
    session = manager.create(name="e", command="cat")
    manager.update("e", new_name="f")
    manager.resize("f", 10, 20)
    await manager.kill("f")
    unsubscribe()
    assert [(e.name, e.info is not None, e.previous_name) for e in events] == [
        ("e", True, ""),
        ("f", True, "e"),
        ("f", True, ""),
        ("f", False, ""),
    ]
    assert (session.rows, session.cols) == (10, 20)


async def test_an_exited_session_stays_readable_then_expires(manager: SessionManager) -> None:
    session = manager.create(name="done", command="echo bye; exit 3")
    await exited(manager, session)
    assert session.info("unit").exit_code == 3
    assert reason_of(lambda: manager.resize("done", 5, 5)) == "SESSION_EXITED"
    assert reason_of(lambda: session.send(b"x")) == "SESSION_EXITED"
    # Exited: an idle wait answers at once, even for the generation already seen.
    generation = session.activity.generation
    got = await asyncio.wait_for(session.wait_idle(10, generation, fresh=True), WAIT_S)
    assert got == generation
    await until(manager, lambda: not manager.has("done"))


async def test_a_wait_for_new_activity_ends_when_the_process_exits(
    manager: SessionManager,
) -> None:
    session = manager.create(name="quiet", command="sleep 0.3")
    waiter = asyncio.create_task(session.wait_idle(10, session.activity.generation, False))
    await exited(manager, session)
    assert await asyncio.wait_for(waiter, WAIT_S) == session.activity.generation


async def test_sessions_tell_when_they_settle_and_become_active(manager: SessionManager) -> None:
    changes: list[ActivityChange] = []
    unsubscribe = manager.subscribe(
        lambda event: changes.append(event) if isinstance(event, ActivityChange) else None
    )
    try:
        session = manager.create(name="t", command="cat")
        await until(manager, lambda: session.activity.settled)
        settled = changes[-1]
        assert (settled.name, settled.quiet) == ("t", True)
        assert settled.generation == session.activity.generation
        generation = session.send(b"hello\n")
        await until(manager, lambda: bool(changes) and not changes[-1].quiet)
        assert changes[-1] == ActivityChange("t", generation, quiet=False)
        await until(manager, lambda: changes[-1].quiet)
        # The echo of the input came after it: the settle counts it.
        assert changes[-1].generation > generation
        assert changes[-1].generation == session.activity.generation
        assert changes[-1].quiet_ms >= 0
    finally:
        unsubscribe()
    # A killed session tells nothing more.
    count = len(changes)
    unsubscribe = manager.subscribe(
        lambda event: changes.append(event) if isinstance(event, ActivityChange) else None
    )
    try:
        await manager.kill("t")
        await asyncio.sleep(0.2)
    finally:
        unsubscribe()
    assert len(changes) == count
