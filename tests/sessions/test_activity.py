"""Unit tests of a session's activity: generations and idle waits."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from wsh.errors import Kind, WshError
from wsh.sessions.activity import SETTLE_S, Activity


async def test_activity_idle_semantics() -> None:
    activity = Activity()
    activity.last_activity -= 1  # quiet for a second already
    started = time.monotonic()
    assert await activity.wait_idle(200, None, fresh=False) == 0
    assert time.monotonic() - started < 0.1
    # fresh: a full timeout of silence from now, even when already idle
    started = time.monotonic()
    await activity.wait_idle(200, None, fresh=True)
    assert time.monotonic() - started >= 0.2
    # last_generation equal to the current one: wait for new activity first
    waiter = asyncio.ensure_future(activity.wait_idle(50, activity.generation, fresh=False))
    await asyncio.sleep(0.15)
    assert not waiter.done()
    activity.touch()
    assert await asyncio.wait_for(waiter, 1) == 1
    # a stale last_generation has no effect
    assert await asyncio.wait_for(activity.wait_idle(10, 0, fresh=False), 1) == 1


async def test_activity_touches_postpone_idle_and_close_fails_waiters() -> None:
    activity = Activity()
    waiter = asyncio.ensure_future(activity.wait_idle(150, None, fresh=False))
    for _ in range(4):
        await asyncio.sleep(0.05)
        activity.touch()
    assert not waiter.done()
    assert await asyncio.wait_for(waiter, 1) == 4
    pending = asyncio.ensure_future(activity.wait_idle(10_000, None, fresh=True))
    await asyncio.sleep(0.01)
    activity.close(WshError(Kind.NOT_FOUND, "SESSION_NOT_FOUND", "gone"))
    with pytest.raises(WshError):
        await asyncio.wait_for(pending, 1)


async def test_activity_tells_when_it_settles_and_when_it_becomes_active() -> None:
    activity = Activity()
    told: list[tuple[bool, int]] = []
    activity.on_transition = lambda quiet: told.append((quiet, activity.generation))
    await asyncio.sleep(SETTLE_S * 3)
    assert told == [(True, 0)] and activity.settled
    # Activity more often than SETTLE_S: active once, settled only after a
    # gap of SETTLE_S between touches (none, unless the loop stalled).
    touched: list[float] = []
    for _ in range(20):
        activity.touch()
        touched.append(time.monotonic())
        await asyncio.sleep(SETTLE_S / 10)
    longest_gap = max(b - a for a, b in itertools.pairwise(touched))
    assert told[1] == (False, 1)
    assert all(not quiet for quiet, _ in told[2::2]) and (
        len(told) == 2 or longest_gap >= SETTLE_S
    ), (told, longest_gap)
    await asyncio.sleep(SETTLE_S * 3)
    assert told[-1] == (True, 20) and activity.settled
    # Output still being emulated holds the settle back, however quiet.
    activity.busy = True
    activity.touch()
    await asyncio.sleep(SETTLE_S * 3)
    assert told[-1] == (False, 21) and not activity.settled
    activity.busy = False
    await asyncio.sleep(SETTLE_S * 3)
    assert told[-1] == (True, 21)
    # Closed: nothing more is told.
    count = len(told)
    activity.close(WshError(Kind.NOT_FOUND, "SESSION_NOT_FOUND", "gone"))
    activity.touch()
    await asyncio.sleep(SETTLE_S * 3)
    assert len(told) == count
