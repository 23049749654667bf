"""Activity and idleness of one session: a generation counter and waits on it.

Waits are deadline-based rather than woken by every output chunk: a waiter
sleeps until ``last_activity + timeout`` and looks again, so a session
flooding output costs its idle waiters one wake-up per ``timeout``, not one
per chunk. Only "wait for the next activity" needs a wake-up on touch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from wsh.errors import WshError
from wsh.terminal.foreground import Foreground, Readiness

# READY waits inspect the foreground once output has paused this long. The
# inspection itself proves the screen complete (see PtyProcess.foreground),
# so this only spares inspections inside a burst: bash's echo, output and
# prompt for `echo x` came in 3 reads 0.05-0.3 ms apart here.
READY_SETTLE_S = 0.002
# While the foreground is busy without output (a `sleep`, a compiler), the
# wait looks again after this, doubling up to the maximum; any output looks
# at once. The re-check of an unchanged busy process is one /proc read.
RECHECK_MIN_S = 0.01
RECHECK_MAX_S = 0.2

Probe = Callable[[Foreground | None], Foreground]


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

    async def _touch_or_sleep(self, delay: float) -> None:
        """Wait for the next activity or ``delay``, whichever comes first."""
        self._raise_if_closed()
        fut: asyncio.Future[None] = self._loop.create_future()
        handle = self._loop.call_later(delay, _resolve, fut)
        self._touch_waiters.add(fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._touch_waiters.discard(fut)

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


async def wait_ready(
    activity: Activity,
    probe: Probe,
    timeout_ms: int,
    last_generation: int | None,
    fresh: bool,
) -> tuple[int, Foreground | None]:
    """Return (generation, foreground) once the foreground waits for input.

    The foreground is inspected with ``probe`` only here, only after output
    paused for ``READY_SETTLE_S`` with nothing left to emulate, and again
    on the next pause or, while it stays busy without output, after
    ``RECHECK_MIN_S`` doubling to ``RECHECK_MAX_S``. Where the kernel cannot
    tell (UNKNOWN), ``timeout_ms`` of quiet settles it as a quiet wait
    would, and the UNKNOWN answer says so. ``last_generation`` and
    ``fresh`` mean what they mean for :meth:`Activity.wait_idle`; ``fresh``
    counts quiet and readiness from the call on. An exited session answers
    at once, with no foreground (None).
    """
    timeout = timeout_ms / 1000
    start = time.monotonic()
    if not fresh and last_generation == activity.generation and not activity.final:
        await activity._next_touch()
    delay = RECHECK_MIN_S
    before: Foreground | None = None
    while True:
        if activity.final:
            return activity.generation, None
        quiet_since = activity.last_activity if not fresh else max(activity.last_activity, start)
        wait = quiet_since + READY_SETTLE_S - time.monotonic()
        if wait > 0 or activity.busy:
            await activity._sleep(max(wait, READY_SETTLE_S))
            continue
        generation = activity.generation
        state = probe(before)
        if state.ready:
            return generation, state
        quiet_left = quiet_since + timeout - time.monotonic()
        if state.readiness is Readiness.UNKNOWN and quiet_left <= 0:
            return generation, state
        before = state if state.readiness is Readiness.BUSY else None
        pause = delay if state.readiness is Readiness.BUSY else min(delay, quiet_left)
        await activity._touch_or_sleep(pause)
        if activity.generation != generation:
            delay, before = RECHECK_MIN_S, None
        else:
            delay = min(delay * 2, RECHECK_MAX_S)
