"""Unit tests of the cluster race's settle queue."""

from __future__ import annotations

import asyncio

from wsh.api.race import SettleQueue
from wsh.v1 import types_pb2


def idle(server: str, session: str, generation: int) -> types_pb2.Idle:
    return types_pb2.Idle(server=server, session=session, generation=generation)


async def test_settle_queue_keeps_one_entry_per_session_in_settle_order() -> None:
    queue = SettleQueue()
    queue.put(idle("a", "s1", 1))
    queue.put(idle("a", "s2", 1))
    queue.put(idle("a", "s1", 2))  # settled again: replaces, moves to the back
    queue.put(idle("b", "s1", 7))  # same name on another server is another session
    got = [await queue.get() for _ in range(3)]
    assert [(i.server, i.session, i.generation) for i in got] == [
        ("a", "s2", 1),
        ("a", "s1", 2),
        ("b", "s1", 7),
    ]
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    queue.put(idle("c", "late", 3))
    assert (await asyncio.wait_for(waiter, 1)).session == "late"
