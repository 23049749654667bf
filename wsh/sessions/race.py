"""Racing the sessions of this server for idleness.

A ``LocalRace`` watches every session in scope, including ones created or
retagged into scope while it runs, and reports each settle once per
generation to a sink. Merging with other servers' races happens above this.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable, Mapping

from wsh.errors import WshError
from wsh.sessions.manager import ActivityChange, SessionEvent, SessionManager
from wsh.sessions.session import Session
from wsh.terminal.foreground import Foreground

Sink = Callable[[Session, int, Foreground | None], None]


class LocalRace:
    """Watches sessions in scope and calls ``sink(session, generation,
    foreground)`` as each settles (quiet, or READY with ``ready``)."""

    def __init__(
        self,
        manager: SessionManager,
        sink: Sink,
        *,
        tags: Iterable[str] = (),
        timeout_ms: int,
        ready: bool = False,
        fresh: bool = False,
        skip: Mapping[str, int] | None = None,
    ) -> None:
        self._manager = manager
        self._sink = sink
        self._tags = frozenset(tags)
        self._timeout_ms = timeout_ms
        self._ready = ready
        self._fresh = fresh
        # Session name -> generation to skip it at (the caller has it).
        self._skips = dict(skip or {})
        self._watchers: dict[Session, asyncio.Task[None]] = {}
        # Generation each session was last reported at, so that a session
        # watched again (retagged out of scope and back, or after its exit)
        # is not reported twice for one generation.
        self._reported: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()
        self._unsubscribe: Callable[[], None] | None = None

    def _in_scope(self, session: Session) -> bool:
        return not self._tags or bool(self._tags & session.tags)

    def _done(self, session: Session, last: int | None) -> bool:
        """An exited session reported (or skipped) at its final generation can
        never settle again."""
        return session.activity.final and last == session.activity.generation

    def _skip(self, session: Session) -> int | None:
        if session in self._reported:
            return self._reported[session]
        return self._skips.get(session.name)

    def start(self) -> int:
        """Begin watching; returns how many sessions in scope can still settle."""
        # Oldest activity first, so that sessions already idle are reported in
        # the order they settled.
        sessions = sorted(
            (s for s in self._manager.matching(self._tags) if not self._done(s, self._skip(s))),
            key=lambda s: s.activity.last_activity,
        )
        for session in sessions:
            self._watch(session)
        self._unsubscribe = self._manager.subscribe(self._on_event)
        return len(sessions)

    def _on_event(self, event: SessionEvent | ActivityChange) -> None:
        if isinstance(event, ActivityChange) or event.info is None:
            # Watchers see activity themselves; a removed session's watcher
            # ends with SESSION_NOT_FOUND on its own.
            return
        try:
            session = self._manager.get(event.name)
        except WshError:
            return
        watched = session in self._watchers
        if self._in_scope(session) and not watched:
            self._watch(session)
        elif watched and not self._in_scope(session):
            self._watchers.pop(session).cancel()

    def _watch(self, session: Session) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(session, self._skip(session)), name=f"race-watch-{session.name}"
        )
        self._watchers[session] = task

    async def _run(self, session: Session, last: int | None) -> None:
        fresh = self._fresh
        try:
            while not self._done(session, last):
                generation, foreground = await session.settle(
                    self._ready, self._timeout_ms, last, fresh
                )
                # Once reported, a session must move on before it can be
                # reported again; an exit alone does not move it.
                if generation != last:
                    self._reported[session] = generation
                    self._sink(session, generation, foreground)
                last, fresh = generation, False
        except WshError:
            pass  # killed or expired: it leaves the race
        finally:
            if self._watchers.get(session) is asyncio.current_task():
                del self._watchers[session]

    async def close(self) -> None:
        """Stop watching and wait for every watcher to end."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = list(self._watchers.values())
        self._watchers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
