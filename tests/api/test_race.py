"""Unit tests of the cluster race's settle queue and the settles it is fed."""

from __future__ import annotations

import asyncio

import pytest

from wsh.api.race import SettleQueue
from wsh.api.render import ScreenRenderer
from wsh.errors import Kind, WshError
from wsh.sessions.manager import SessionManager
from wsh.v1 import hub_pb2, types_pb2


def settle(server: str, session: str, generation: int) -> tuple[hub_pb2.RaceIdleResponse, int]:
    response = hub_pb2.RaceIdleResponse(
        idle=types_pb2.Idle(server=server, session=session, generation=generation)
    )
    return response, response.ByteSize()


async def test_settle_queue_keeps_one_entry_per_session_in_settle_order() -> None:
    queue = SettleQueue()
    queue.put(*settle("a", "s1", 1))
    queue.put(*settle("a", "s2", 1))
    queue.put(*settle("a", "s1", 2))  # settled again: replaces, moves to the back
    queue.put(*settle("b", "s1", 7))  # same name on another server is another session
    assert queue.pending_bytes == sum(
        settle(*key)[1] for key in (("a", "s2", 1), ("a", "s1", 2), ("b", "s1", 7))
    )
    got = [(await queue.get()).idle for _ in range(3)]
    assert [(i.server, i.session, i.generation) for i in got] == [
        ("a", "s2", 1),
        ("a", "s1", 2),
        ("b", "s1", 7),
    ]
    assert queue.pending_bytes == 0
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    queue.put(*settle("c", "late", 3))
    assert (await asyncio.wait_for(waiter, 1)).idle.session == "late"


async def test_a_failed_queue_ends_its_reader_after_what_is_queued() -> None:
    queue = SettleQueue()
    queue.put(*settle("a", "s1", 1))
    waiting = SettleQueue()
    reader = asyncio.ensure_future(waiting.get())
    await asyncio.sleep(0.01)
    stop = WshError(Kind.UNAVAILABLE, "SERVER_SHUTTING_DOWN", "going")
    waiting.fail(stop)
    with pytest.raises(WshError):
        await asyncio.wait_for(reader, 1)
    queue.fail(stop)
    assert (await queue.get()).idle.session == "s1"
    with pytest.raises(WshError):
        await queue.get()


async def test_local_settles_are_built_once_and_follow_renames() -> None:
    sessions = SessionManager("unit")
    try:
        session = sessions.create(name="one", command="cat")
        render = ScreenRenderer()
        generation = session.activity.generation
        first, size = render.settle(session, "unit", generation, False, None)
        again, _ = render.settle(session, "unit", generation, False, None)
        assert again is first and size == first.ByteSize()
        sessions.update("one", new_name="two")
        renamed, _ = render.settle(session, "unit", generation, False, None)
        assert renamed.idle.session == "two"
    finally:
        await asyncio.wait_for(sessions.close_all(), 10)
