"""A session: a PTY process, its screen and activity, a name and tags."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from wsh import defaults
from wsh.errors import Kind, WshError, session_not_found
from wsh.sessions.activity import Activity
from wsh.sessions.info import SessionInfo, SessionState
from wsh.terminal.process import PtyProcess, SpawnSpec
from wsh.terminal.screen import ScreenView, ScrollbackPage, TerminalScreen

# How long one session's output may be emulated in a row before the loop
# serves other work. Some sequences cost a whole screen each (ESC#8 fills
# 1000x1000 cells in 9.7 ms), so a 64 KiB read took seconds in one go.
FEED_TURN_S = 0.005


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
        self._loop = asyncio.get_running_loop()
        self._pump_handle: asyncio.Handle | None = None
        self._on_exit: Callable[[Session], None] | None = None
        self.process = PtyProcess(spec, self._output, lambda _code: self._exited(on_exit))

    def _exited(self, on_exit: Callable[[Session], None]) -> None:
        # The exit is told once the screen shows all the output.
        self._on_exit = on_exit
        if self._pump_handle is None:
            self._finish()

    def _finish(self) -> None:
        on_exit, self._on_exit = self._on_exit, None
        if on_exit is not None:
            self.activity.finish()
            on_exit(self)

    def _output(self, data: bytes) -> None:
        self.screen.write(data)
        if self._pump_handle is None:
            self._pump()

    def _pump(self) -> None:
        """Emulate queued output for at most ``FEED_TURN_S``, then let the loop
        serve everyone else; while output is left, the PTY is not read, so the
        program waits on its terminal as it would on a slow one."""
        self._pump_handle = None
        start = time.monotonic()
        done = self.screen.advance(start + FEED_TURN_S)
        self.activity.touch()
        if done:
            self.process.resume_reading()
            self._finish()
        else:
            # Then rest as long as that took: one call needs several turns of
            # the loop, and with the emulation in every turn a GetServerInfo
            # took ten times a turn's cost.
            self.process.pause_reading()
            rest = time.monotonic() - start
            self._pump_handle = self._loop.call_later(rest, self._pump)

    @property
    def state(self) -> SessionState:
        return SessionState.RUNNING if self.process.running else SessionState.EXITED

    def info(self, server: str) -> SessionInfo:
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

    async def close(self) -> None:
        """Fail waits on this session, end its process group and free the PTY."""
        self.activity.close(session_not_found(self.name))
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None
        await self.process.terminate()
