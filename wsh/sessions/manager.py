"""The sessions of one server: naming, lookup, listing, retagging and killing.

Every mutation runs on the event loop without awaiting between its checks
and its effect, which makes each one atomic with respect to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import pwd
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from wsh import defaults
from wsh.errors import Kind, WshError, invalid, session_not_found, shorten
from wsh.names import check_session_name, check_tag_count, check_tags
from wsh.sessions.attach import OutputTap
from wsh.sessions.info import SessionInfo
from wsh.sessions.session import Session
from wsh.terminal.process import SpawnSpec

log = logging.getLogger(__name__)

# The server's own secrets must not leak into the shells it starts.
_SCRUBBED_ENV = ("WSH_TOKEN",)
TERM = "xterm-256color"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A change in the inventory: ``info`` is set for an upsert, unset for a
    removal, which ``expired`` says was the end of an exited session's
    retention (else it was killed)."""

    name: str
    info: SessionInfo | None
    previous_name: str = ""
    expired: bool = False


@dataclass(frozen=True, slots=True)
class ActivityChange:
    """A session settled (``quiet``: no activity for ``SETTLE_S``, as of
    ``quiet_ms`` ago) or became active again after it had settled."""

    name: str
    generation: int
    quiet: bool
    quiet_ms: int = 0


Listener = Callable[[SessionEvent | ActivityChange], None]


def clamp_dimension(value: int, default: int) -> int:
    """0 means the default; everything else is clamped to 1..1000."""
    if value <= 0:
        return default
    return min(value, defaults.MAX_DIMENSION)


def login_shell() -> str:
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    return shell or os.environ.get("SHELL") or "/bin/sh"


class SessionManager:
    """Names, finds, lists, retags and kills the sessions of this server."""

    def __init__(
        self,
        hostname: str,
        *,
        max_sessions: int = defaults.MAX_SESSIONS,
        exited_retention_s: float = defaults.EXITED_RETENTION_S,
        scrollback_limit: int = defaults.SCROLLBACK_LINES,
        scrollback_bytes: int = defaults.SCROLLBACK_BYTES,
        max_attachers: int = defaults.MAX_ATTACHERS,
        attach_buffer_bytes: int = defaults.ATTACH_BUFFER_BYTES,
    ) -> None:
        self.hostname = hostname
        self.max_attachers = max_attachers
        self.attach_buffer_bytes = attach_buffer_bytes
        self.max_sessions = max_sessions
        self.exited_retention_s = exited_retention_s
        self.scrollback_limit = scrollback_limit
        self.scrollback_bytes = scrollback_bytes
        self._sessions: dict[str, Session] = {}
        self._ids = itertools.count()
        self._listeners: list[Listener] = []
        self._retention: dict[Session, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._base_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        self._home = os.path.expanduser("~")

    # -- events ---------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every inventory change; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: SessionEvent | ActivityChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("session event listener failed")

    def _upserted(self, session: Session, previous_name: str = "") -> None:
        self._emit(SessionEvent(session.name, session.info(self.hostname), previous_name))

    # -- queries --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._sessions)

    def has(self, name: str) -> bool:
        return name in self._sessions

    def get(self, name: str) -> Session:
        session = self._sessions.get(name)
        if session is None:
            raise session_not_found(name)
        return session

    def matching(self, tags: Iterable[str] = ()) -> list[Session]:
        """Sessions having ANY of ``tags`` (all when empty), by name."""
        wanted = set(tags)
        return sorted(
            (s for s in self._sessions.values() if not wanted or wanted & s.tags),
            key=lambda s: s.name,
        )

    def info(self, session: Session) -> SessionInfo:
        return session.info(self.hostname)

    # -- mutations ------------------------------------------------------------

    def _next_name(self) -> str:
        while True:
            name = str(next(self._ids))
            if name not in self._sessions:
                return name

    def _check_free(self, name: str) -> None:
        """A valid name no session here has."""
        check_session_name(name)
        if name in self._sessions:
            raise WshError(
                Kind.ALREADY_EXISTS,
                "SESSION_NAME_TAKEN",
                f"A session named {name!r} already exists.",
                {"session": name},
            )

    def create(
        self,
        *,
        name: str = "",
        command: str = "",
        rows: int = 0,
        cols: int = 0,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        tags: Iterable[str] = (),
    ) -> Session:
        """Start a process on a new PTY and register it under ``name``."""
        if name:
            self._check_free(name)
        tag_set = check_tag_count(frozenset(check_tags(list(tags))))
        if len(self._sessions) >= self.max_sessions:
            raise WshError(
                Kind.RESOURCE_EXHAUSTED,
                "TOO_MANY_SESSIONS",
                f"This server already has {len(self._sessions)} sessions (the maximum); "
                "kill some first.",
                {"max_sessions": str(self.max_sessions)},
            )
        workdir = cwd or self._home
        if not os.path.isdir(workdir):
            raise invalid(
                "INVALID_CWD",
                f"Working directory {shorten(workdir)!r} does not exist.",
                cwd=workdir,
            )
        for key, value in (env or {}).items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise invalid(
                    "INVALID_ENV",
                    f"Invalid environment variable {shorten(key)!r}: names must be non-empty "
                    "without '=' and neither name nor value may contain NUL.",
                )
        if "\0" in command:
            raise invalid("INVALID_COMMAND", "The command may not contain NUL characters.")
        shell = login_shell()
        argv = ["/bin/sh", "-c", command] if command else [shell, "-l"]
        full_env = {**self._base_env, "TERM": TERM, **(env or {})}
        spec = SpawnSpec(
            argv=argv,
            env=full_env,
            cwd=workdir,
            rows=clamp_dimension(rows, defaults.DEFAULT_ROWS),
            cols=clamp_dimension(cols, defaults.DEFAULT_COLS),
        )
        session = Session(
            name or self._next_name(),
            tag_set,
            command or shell,
            spec,
            self.scrollback_limit,
            self._process_exited,
            self.scrollback_bytes,
        )
        self._sessions[session.name] = session
        session.activity.on_transition = functools.partial(self._transition, session)
        self._upserted(session)
        return session

    def _transition(self, session: Session, quiet: bool) -> None:
        if self._sessions.get(session.name) is not session:
            return  # being killed
        activity = session.activity
        self._emit(
            ActivityChange(
                session.name, activity.generation, quiet, activity.idle_ms() if quiet else 0
            )
        )

    def update(
        self,
        name: str,
        *,
        new_name: str = "",
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
    ) -> Session:
        """Rename and retag at once: either everything applies or nothing does."""
        session = self.get(name)
        add = frozenset(check_tags(list(add_tags)))
        remove = frozenset(check_tags(list(remove_tags)))
        tags = check_tag_count((session.tags | add) - remove)
        renaming = bool(new_name) and new_name != name
        if renaming:
            self._check_free(new_name)
            del self._sessions[name]
            session.name = new_name
            self._sessions[new_name] = session
        session.tags = tags
        self._upserted(session, previous_name=name if renaming else "")
        return session

    def resize(self, name: str, rows: int, cols: int) -> Session:
        session = self.get(name)
        session.check_running("it cannot be resized")
        session.resize(clamp_dimension(rows, session.rows), clamp_dimension(cols, session.cols))
        self._upserted(session)
        return session

    def attach(self, session: Session) -> OutputTap:
        """A tap of ``session``'s output within this server's attach limits."""
        return session.attach(self.attach_buffer_bytes, self.max_attachers)

    async def kill(self, name: str) -> None:
        """End the session's process group, reap it and forget the session."""
        session = self.get(name)
        self._forget(session)
        await session.close()

    def _forget(self, session: Session, *, expired: bool = False) -> None:
        del self._sessions[session.name]
        handle = self._retention.pop(session, None)
        if handle is not None:
            handle.cancel()
        self._emit(SessionEvent(session.name, None, expired=expired))

    def _process_exited(self, session: Session) -> None:
        if self._sessions.get(session.name) is not session:
            return  # being killed; kill() finishes the job
        self._upserted(session)
        self._retention[session] = asyncio.get_running_loop().call_later(
            self.exited_retention_s, self._expire, session
        )

    def _expire(self, session: Session) -> None:
        self._retention.pop(session, None)
        if self._sessions.get(session.name) is not session:
            return
        self._forget(session, expired=True)
        task = asyncio.get_running_loop().create_task(
            session.close(), name=f"close-expired-{session.name}"
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def interrupt_waits(self, error: WshError) -> None:
        """Fail every idle wait with ``error``, so that a shutdown need not outwait them."""
        for session in self._sessions.values():
            session.activity.close(error)
            session.end_taps(error)

    async def close_all(self) -> None:
        """Kill every session concurrently (server shutdown)."""
        sessions = list(self._sessions.values())
        for session in sessions:
            self._forget(session)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
