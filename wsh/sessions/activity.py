"""Activity and idleness of one session: a generation counter and waits on it.

Waits are deadline-based rather than woken by every output chunk: a waiter
sleeps until ``last_activity + timeout`` and looks again, so a session
flooding output costs its idle waiters one wake-up per ``timeout``, not one
per chunk. Only "wait for the next activity" needs a wake-up on touch.
"""

from __future__ import annotations

import asyncio
import time

from wsh.errors import WshError


class Activity:
    """Generation counter, last-activity time and the waits on them."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.generation = 0
        self.last_activity = time.monotonic()
        self._touch_waiters: set[asyncio.Future[None]] = set()
        self._sleepers: set[asyncio.Future[None]] = set()
        self._closed: WshError | None = None
        # Set when the process has exited: the generation can never move again.
        self.final = False
        # Set while output read is still being emulated (in turns, with rests
        # between them): the screen is not settled, however quiet it looks.
        self.busy = False

    def touch(self) -> None:
        """Count one output chunk or one input."""
        self.generation += 1
        self.last_activity = time.monotonic()
        if self._touch_waiters:
            for fut in self._touch_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._touch_waiters.clear()

    def idle_ms(self) -> int:
        return int((time.monotonic() - self.last_activity) * 1000)

    def finish(self) -> None:
        """The process has exited: wake waits for new activity, which cannot come."""
        self.final = True
        for fut in (*self._touch_waiters, *self._sleepers):
            if not fut.done():
                fut.set_result(None)

    def close(self, error: WshError) -> None:
        """Fail every current and future wait with ``error`` (session gone)."""
        self._closed = error
        for fut in (*self._touch_waiters, *self._sleepers):
            if not fut.done():
                fut.set_exception(error)
        self._touch_waiters.clear()
        self._sleepers.clear()

    async def _next_touch(self) -> None:
        self._raise_if_closed()
        fut: asyncio.Future[None] = self._loop.create_future()
        self._touch_waiters.add(fut)
        try:
            await fut
        finally:
            self._touch_waiters.discard(fut)

    async def _sleep(self, delay: float) -> None:
        # A plain asyncio.sleep would not notice the session being killed.
        self._raise_if_closed()
        fut: asyncio.Future[None] = self._loop.create_future()
        handle = self._loop.call_later(delay, _resolve, fut)
        self._sleepers.add(fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleepers.discard(fut)

    def _raise_if_closed(self) -> None:
        if self._closed is not None:
            raise self._closed

    async def wait_idle(self, timeout_ms: int, last_generation: int | None, fresh: bool) -> int:
        """Return the generation once there has been no activity for ``timeout_ms``.

        With ``last_generation`` equal to the current generation, first wait
        for new activity. With ``fresh``, always observe a full ``timeout_ms``
        of silence from now on (``last_generation`` is then ignored). Once
        the process has exited neither applies: nothing can change any more,
        so the final generation is returned as soon as it is quiet.
        """
        timeout = timeout_ms / 1000
        if fresh and not self.final:
            await self._sleep(timeout)
        elif last_generation == self.generation and not self.final:
            await self._next_touch()
        while True:
            remaining = self.last_activity + timeout - time.monotonic()
            if remaining <= 0:
                if not self.busy:
                    return self.generation
                remaining = timeout
            await self._sleep(remaining)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
