"""A session: a PTY process, its screen and activity, a name and tags."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Callable

from wsh import defaults
from wsh.errors import Kind, WshError, session_not_found
from wsh.sessions.activity import Activity, wait_ready
from wsh.sessions.attach import OutputTap
from wsh.sessions.info import SessionInfo, SessionState
from wsh.terminal.foreground import Foreground
from wsh.terminal.process import PtyProcess, SpawnSpec
from wsh.terminal.screen import ScreenView, ScrollbackPage, TerminalScreen

# How long output may be emulated in a row before the loop serves other
# work. Some sequences cost a whole screen each (ESC#8 fills 1000x1000 cells
# in 9.7 ms), so a 64 KiB read took seconds in one go.
FEED_TURN_S = 0.005
# How long a listing may show an inspected foreground: 0.1 s once the
# session moved on since, a second while it was active lately (programs
# start and end around output), half a minute once it has been quiet, so
# that listing or heartbeating a thousand quiet sessions inspects about 33
# of them a second, not all.
FOREGROUND_MOVED_S = 0.1
FOREGROUND_FRESH_S = 1.0
FOREGROUND_QUIET_S = 30.0
RECENT_ACTIVITY_S = 10.0
# Re-inspections for listings and heartbeats, shared by every session of the
# process: a burst, then this many a second (85-300 µs each, so at most
# about 3% of a core); past it a listing shows the last inspection. A list
# of a thousand sessions that all moved lately would otherwise hold the
# loop for 100 ms or more.
LISTING_BURST = 200.0
LISTING_PER_S = 100.0


class _Budget:
    """A token bucket: ``take`` is True while the rate allows one more."""

    def __init__(self, burst: float, per_s: float) -> None:
        self._burst, self._per_s = burst, per_s
        self._tokens, self._at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


_LISTING_BUDGET = _Budget(LISTING_BURST, LISTING_PER_S)


class Feeder:
    """Emulates the output backlogs of all the sessions of a loop, in turn.

    A turn gives sessions with a backlog ``FEED_TURN_S`` in all, round
    robin, then the feeder rests as long as the turn took: one call needs
    several turns of the loop, and with emulation in every turn a
    GetServerInfo took ten times a turn's cost. However many sessions
    flood, emulating their backlogs takes at most half of the loop's time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: deque[Session] = deque()
        self._handle: asyncio.Handle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Feeder:
        """The loop's feeder: one per loop, so that the budget is the loop's."""
        feeder = _FEEDERS.get(loop)
        if feeder is None:
            feeder = _FEEDERS[loop] = cls(loop)
        return feeder

    @property
    def busy(self) -> bool:
        """Whether some session waits for its backlog to be emulated."""
        return bool(self._queue)

    def add(self, session: Session) -> None:
        self._queue.append(session)
        if self._handle is None:
            self._handle = self._loop.call_soon(self._turn)

    def discard(self, session: Session) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(session)

    def _turn(self) -> None:
        self._handle = None
        start = time.monotonic()
        deadline = start + FEED_TURN_S
        while self._queue and time.monotonic() < deadline:
            session = self._queue.popleft()
            if not session._feed(deadline):
                self._queue.append(session)
        if self._queue:
            self._handle = self._loop.call_later(time.monotonic() - start, self._turn)


_FEEDERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Feeder] = weakref.WeakKeyDictionary()


class Session:
    """One terminal session. Owned and named by a ``SessionManager``."""

    def __init__(
        self,
        name: str,
        tags: frozenset[str],
        command: str,
        spec: SpawnSpec,
        scrollback_limit: int,
        on_exit: Callable[[Session], None],
        scrollback_bytes: int = defaults.SCROLLBACK_BYTES,
    ) -> None:
        self.name = name
        self.tags = tags
        self.command = command
        self.cwd = spec.cwd
        self.rows = spec.rows
        self.cols = spec.cols
        self.created_at = time.time()
        self.activity = Activity()
        self.screen = TerminalScreen(spec.rows, spec.cols, scrollback_limit, scrollback_bytes)
        self._feeder = Feeder.of(asyncio.get_running_loop())
        self._backlog = False  # output waits in the feeder's queue
        self._on_exit: Callable[[Session], None] | None = None
        self._ended = False  # the exit was told: the screen shows all the output
        self._taps: set[OutputTap] = set()
        # The last inspection of the foreground, with its monotonic time and
        # the generation then.
        self._foreground: tuple[Foreground, float, int] | None = None
        self.process = PtyProcess(spec, self._output, lambda _code: self._exited(on_exit))

    def _exited(self, on_exit: Callable[[Session], None]) -> None:
        # The exit is told once the screen shows all the output.
        self._on_exit = on_exit
        if not self._backlog:
            self._finish()

    def _finish(self) -> None:
        on_exit, self._on_exit = self._on_exit, None
        if on_exit is not None:
            self._ended = True
            self.activity.finish()
            for tap in self._taps:
                tap.exited(self._exit_code())
            on_exit(self)

    def _exit_code(self) -> int:
        code = self.process.exit_code
        return -1 if code is None else code

    def _output(self, data: bytes) -> None:
        self.screen.write(data)
        # In the same step as the emulator's queue: see sessions/attach.py.
        for tap in self._taps:
            tap.put(data)
        if self._backlog:
            return
        if self._feeder.busy:
            # Others wait already: take a place in the queue.
            self._backlog = self.activity.busy = True
            self.process.pause_reading()
            self._feeder.add(self)
        elif not self._feed(time.monotonic() + FEED_TURN_S):
            self._feeder.add(self)

    def _feed(self, deadline: float) -> bool:
        """Emulate output until ``deadline``; True once none is left. While
        some is, the PTY is not read, so the program waits on its terminal as
        it would on a slow one."""
        done = self.screen.advance(deadline)
        self.activity.touch()
        self._backlog = self.activity.busy = not done
        if done:
            self.process.resume_reading()
            self._finish()
        else:
            self.process.pause_reading()
        return done

    @property
    def state(self) -> SessionState:
        return SessionState.RUNNING if self.process.running else SessionState.EXITED

    def inspect(self, before: Foreground | None = None) -> Foreground:
        """Inspect the foreground now (see ``PtyProcess.foreground``)."""
        state = self.process.foreground(before)
        self._foreground = (state, time.monotonic(), self.activity.generation)
        return state

    def foreground(self) -> Foreground | None:
        """The foreground as a listing shows it, inspected again only when
        the last inspection is older than the bounds above and the shared
        budget allows; None once exited."""
        if not self.process.running:
            return None
        now = time.monotonic()
        if self._foreground is not None:
            state, at, generation = self._foreground
            if generation != self.activity.generation:
                fresh_for = FOREGROUND_MOVED_S
            elif now - self.activity.last_activity < RECENT_ACTIVITY_S:
                fresh_for = FOREGROUND_FRESH_S
            else:
                fresh_for = FOREGROUND_QUIET_S
            if now - at < fresh_for or not _LISTING_BUDGET.take():
                return state
        return self.inspect()

    def info(self, server: str) -> SessionInfo:
        foreground = self.foreground()
        return SessionInfo(
            name=self.name,
            server=server,
            tags=tuple(sorted(self.tags)),
            command=self.command,
            pid=self.process.pid,
            rows=self.rows,
            cols=self.cols,
            state=self.state,
            exit_code=self.process.exit_code,
            generation=self.activity.generation,
            created_at=self.created_at,
            last_activity_ms=self.activity.idle_ms(),
            cwd=self.cwd,
            ready=foreground is not None and foreground.ready,
            foreground=foreground.name if foreground is not None else "",
        )

    def send(self, data: bytes) -> int:
        """Queue input for the program; returns the generation it was counted at."""
        self.check_running("it takes no more input")
        self.process.write(data)
        self.activity.touch()
        return self.activity.generation

    def check_running(self, refusal: str) -> None:
        """Refuse an action that needs the process (input, resize) once it has exited."""
        if not self.process.running:
            raise WshError(
                Kind.FAILED_PRECONDITION,
                "SESSION_EXITED",
                f"Session {self.name!r} has exited (code {self.process.exit_code}); {refusal}.",
                {"session": self.name},
            )

    @property
    def attachers(self) -> int:
        return len(self._taps)

    def attach(self, buffer_bytes: int, max_attachers: int) -> OutputTap:
        """A tap of this session's output; take a :meth:`snapshot` at once
        (in the same step) before reading it. ``detach`` it when done."""
        if len(self._taps) >= max_attachers:
            raise WshError(
                Kind.RESOURCE_EXHAUSTED,
                "TOO_MANY_ATTACHERS",
                f"Session {self.name!r} already has {len(self._taps)} attachers (the "
                f"limit is {max_attachers}); detach some first.",
                {"session": self.name, "limit": str(max_attachers)},
            )
        tap = OutputTap(buffer_bytes, self._taps.discard)
        self._taps.add(tap)
        if self._ended:
            tap.exited(self._exit_code())
        return tap

    def snapshot(self, tap: OutputTap) -> bytes:
        """Bytes that repaint a terminal to show the screen as ``view`` does
        now; ``tap`` restarts from this point: with the output the emulator
        has not taken yet, then every later read."""
        tap.restart(self.screen.unfed())
        return self.screen.repaint()

    def end_taps(self, error: WshError) -> None:
        """End every attacher's stream with ``error``."""
        for tap in list(self._taps):
            tap.fail(error)

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.screen.resize(rows, cols)
        self.process.resize(rows, cols)

    def view(self, styled: bool) -> ScreenView:
        return self.screen.view(styled)

    def scrollback(self, offset: int, limit: int, styled: bool) -> ScrollbackPage:
        return self.screen.scrollback(offset, limit, styled)

    async def wait_idle(self, timeout_ms: int, last_generation: int | None, fresh: bool) -> int:
        return await self.activity.wait_idle(timeout_ms, last_generation, fresh)

    async def wait_ready(
        self, timeout_ms: int, last_generation: int | None, fresh: bool
    ) -> tuple[int, Foreground | None]:
        """Wait until the foreground waits for input (see ``activity.wait_ready``)."""
        return await wait_ready(self.activity, self.inspect, timeout_ms, last_generation, fresh)

    async def settle(
        self, ready: bool, timeout_ms: int, last_generation: int | None, fresh: bool
    ) -> tuple[int, Foreground | None]:
        """Wait for READY (``ready``) or quiet; return the generation and the
        foreground found then (None once exited). A quiet wait inspects the
        foreground once, as it settles, so that every Idle tells it."""
        if ready:
            return await self.wait_ready(timeout_ms, last_generation, fresh)
        generation = await self.wait_idle(timeout_ms, last_generation, fresh)
        return generation, self.inspect() if self.process.running else None

    async def close(self) -> None:
        """Fail waits on this session, end its process group and free the PTY."""
        self.activity.close(session_not_found(self.name))
        self.end_taps(session_not_found(self.name))
        self._feeder.discard(self)
        self._backlog = False
        await self.process.terminate()
