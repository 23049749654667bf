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

# READY waits inspect the foreground as soon as output stops arriving (the
# first turn of the loop with nothing left to emulate), with no settle time:
# the inspection itself proves the screen complete (see
# PtyProcess.foreground), and a settle only delays the answer. Measured with
# bench/ready.py (`echo <token>` round trip, 60 runs): a 2 ms settle gave a
# median of 5.8 ms, 1 ms 4.5 ms, none 3.3 ms. bash's answer to `echo x`
# came in 1 or 2 reads 0.1-0.4 ms apart, and 100 round trips took 1.0 to 2.0
# inspections on average (85 µs each for bash under `sh -c`).
# While the foreground is busy without output (a `sleep`, a compiler), the
# wait looks again after this, doubling up to the maximum; any output looks
# at once. The re-check of an unchanged busy process is one /proc read
# (10-20 µs), but each wake-up of a wait costs about 58 µs here in all: 50
# waits on `sleep` took 1.5% of a core at a 200 ms maximum, so 500 ms. A
# program that becomes ready without printing anything is seen within it.
RECHECK_MIN_S = 0.01
RECHECK_MAX_S = 0.5
# Whole inspections (85-300 µs each) one wait may make in a burst, and the
# rate it gets back: a program that prints while it starts new processes
# (`while :; do echo; sleep 0.001; done`) would otherwise cost one per
# output chunk: it took 103 in 2 s with this bound. A round trip takes 1-2.
INSPECT_BURST = 4.0
INSPECT_EVERY_S = 0.02
# A session has settled once it has had no output or input for this long
# with nothing left to emulate: the transition is told to listeners (the
# Link, watchers), so that a hub knows which sessions are settled without a
# stream to each backend. Short enough that a race with the default 500 ms
# quiet time is never held back by it; long enough that a program printing
# a progress line every few milliseconds makes no transitions at all. The
# check runs once per SETTLE_S of activity, not per output chunk.
SETTLE_S = 0.05
# Milliseconds since an event are told as 32-bit counts (the API's rule for
# JSON clients), saturating after 49.7 days.
MAX_MS = 2**32 - 1

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
        # Quiet for SETTLE_S with nothing to emulate; each change is told to
        # on_transition (True: settled, False: active again).
        self.settled = False
        self.on_transition: Callable[[bool], None] | None = None
        self._settle_check: asyncio.TimerHandle | None = self._loop.call_later(
            SETTLE_S, self._check_settled
        )

    def touch(self) -> None:
        """Count one output chunk or one input."""
        self.generation += 1
        self.last_activity = time.monotonic()
        if self.settled:
            self.settled = False
            if self.on_transition is not None:
                self.on_transition(False)
        if self._settle_check is None and self._closed is None:
            self._settle_check = self._loop.call_later(SETTLE_S, self._check_settled)
        if self._touch_waiters:
            for fut in self._touch_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._touch_waiters.clear()

    def _check_settled(self) -> None:
        remaining = self.last_activity + SETTLE_S - time.monotonic()
        if remaining > 0 or self.busy:
            # Emulation touches at every turn, so a busy session is looked
            # at again after its next turn at the latest.
            self._settle_check = self._loop.call_later(max(remaining, 0.005), self._check_settled)
            return
        self._settle_check = None
        self.settled = True
        if self.on_transition is not None:
            self.on_transition(True)

    def idle_ms(self) -> int:
        """Milliseconds since the last activity, saturating at ``MAX_MS``."""
        return min(MAX_MS, int((time.monotonic() - self.last_activity) * 1000))

    def finish(self) -> None:
        """The process has exited: wake waits for new activity, which cannot come."""
        self.final = True
        for fut in (*self._touch_waiters, *self._sleepers):
            if not fut.done():
                fut.set_result(None)

    def close(self, error: WshError) -> None:
        """Fail every current and future wait with ``error`` (session gone)."""
        self._closed = error
        self.on_transition = None
        if self._settle_check is not None:
            self._settle_check.cancel()
            self._settle_check = None
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

    The foreground is inspected with ``probe`` only here, once output has
    stopped arriving and nothing is left to emulate, and again after the
    next output or, while it stays busy without output, after
    ``RECHECK_MIN_S`` doubling to ``RECHECK_MAX_S``. Where the kernel cannot
    tell (UNKNOWN), ``timeout_ms`` of quiet settles it as a quiet wait
    would, and the UNKNOWN answer says so. ``last_generation`` means what it
    means for :meth:`Activity.wait_idle`; ``fresh`` counts that quiet from
    the call on (readiness is always inspected after the call began). An
    exited session answers at once, with no foreground (None).
    """
    timeout = timeout_ms / 1000
    start = time.monotonic()
    if not fresh and last_generation == activity.generation and not activity.final:
        await activity._next_touch()
    delay = RECHECK_MIN_S
    before: Foreground | None = None
    unknown = False  # the previous inspection could not tell either
    tokens, refilled = INSPECT_BURST, start
    while True:
        if activity.final:
            return activity.generation, None
        if activity.busy:
            # Output is being emulated in turns; each turn touches.
            await activity._next_touch()
            continue
        now = time.monotonic()
        tokens = min(INSPECT_BURST, tokens + (now - refilled) / INSPECT_EVERY_S)
        refilled = now
        if tokens < 1:
            await activity._sleep((1 - tokens) * INSPECT_EVERY_S)
            continue
        generation = activity.generation
        state = probe(before)
        if state is not before:
            tokens -= 1  # a whole inspection, not the one-read re-check
        if state.ready:
            return generation, state
        quiet_since = max(activity.last_activity, start) if fresh else activity.last_activity
        quiet_left = quiet_since + timeout - time.monotonic()
        # Twice in a row: one UNKNOWN may be a race with a process's exit.
        if state.readiness is Readiness.UNKNOWN and unknown and quiet_left <= 0:
            return generation, state
        unknown = state.readiness is Readiness.UNKNOWN
        before = state if state.readiness is Readiness.BUSY else None
        if state.readiness is Readiness.BUSY:
            pause = delay
        else:
            pause = min(delay, max(quiet_left, RECHECK_MIN_S))
        await activity._touch_or_sleep(pause)
        if activity.generation != generation:
            # Output: look again at once; the busy process found last time
            # is looked at first (still running or in the same call: busy).
            delay = RECHECK_MIN_S
        else:
            delay = min(delay * 2, RECHECK_MAX_S)
