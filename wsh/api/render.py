"""Protobuf screens and inventories, built once and reused across calls."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

from wsh import convert
from wsh.federation.registry import Backend
from wsh.sessions.activity import MAX_MS
from wsh.sessions.info import SessionInfo
from wsh.sessions.manager import ActivityChange, SessionEvent, SessionManager
from wsh.sessions.session import Session
from wsh.terminal.foreground import Foreground, Readiness
from wsh.terminal.screen import ScreenView, StyledLine
from wsh.v1 import hub_pb2, types_pb2


@dataclass(slots=True)
class _Rendered:
    """A session's view as protobuf, with the Idle last built around it."""

    view: ScreenView
    screen: types_pb2.Screen
    # Per row, the spans and their protobuf (styled views only).
    rows: list[tuple[StyledLine, types_pb2.StyledLine]]
    idle: types_pb2.Idle | None = None
    # The RaceIdleResponse holding a copy of ``idle``, and its size, for
    # every race stream; built from the Idle named first.
    settle: tuple[types_pb2.Idle, hub_pb2.RaceIdleResponse, int] | None = None


class ScreenRenderer:
    """Builds protobuf screens once per rendered view and shares them.

    Many clients, races and idle waits ask for the same screen; the terminal
    caches its view per output, and this caches the protobuf built from it,
    and the Idle around it. Callers get the cached messages themselves, not
    copies, and must not change them: 40 RaceIdle streams each holding a
    copy of a styled 200x1000 screen took 1.1 GB.
    """

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[Session, dict[bool, _Rendered]] = (
            weakref.WeakKeyDictionary()
        )

    def _rendered(self, session: Session, styled: bool, generation: int) -> _Rendered:
        view = session.view(styled)
        per_session = self._cache.setdefault(session, {})
        cached = per_session.get(styled)
        rows = cached.rows if cached is not None else []
        if cached is None or cached.view is not view:
            if view.styled_lines is not None:
                rows = _styled_rows(view.styled_lines, rows)
            screen = convert.screen_to_pb(view, [pb for _, pb in rows])
        elif cached.screen.generation != generation:
            # Input moved the generation on, not the screen.
            screen = types_pb2.Screen()
            screen.CopyFrom(cached.screen)
        else:
            return cached
        screen.generation = generation
        cached = per_session[styled] = _Rendered(view, screen, rows)
        return cached

    def screen(self, session: Session, styled: bool, generation: int) -> types_pb2.Screen:
        """The session's screen at ``generation``: shared, not to be changed."""
        return self._rendered(session, styled, generation).screen

    def idle(
        self,
        session: Session,
        server: str,
        generation: int,
        styled: bool,
        foreground: Foreground | None,
    ) -> types_pb2.Idle:
        """The session's Idle at ``generation`` with ``foreground`` as found
        when it settled (None: exited): shared, not to be changed."""
        rendered = self._rendered(session, styled, generation)
        idle = rendered.idle
        exit_code = session.process.exit_code
        ready = foreground is not None and foreground.ready
        name = foreground.name if foreground is not None else ""
        unknown = foreground is not None and foreground.readiness is Readiness.UNKNOWN
        if (
            idle is None
            or idle.session != session.name
            or idle.server != server
            or idle.HasField("exit_code") != (exit_code is not None)
            or (exit_code is not None and idle.exit_code != exit_code)
            or (idle.ready, idle.foreground, idle.ready_unknown) != (ready, name, unknown)
        ):
            idle = rendered.idle = types_pb2.Idle(
                session=session.name,
                server=server,
                generation=generation,
                screen=rendered.screen,
                last_activity_ms=session.activity.idle_ms(),
                exit_code=exit_code,
                ready=ready,
                foreground=name,
                ready_unknown=unknown,
            )
        return idle

    def settle(
        self,
        session: Session,
        server: str,
        generation: int,
        styled: bool,
        foreground: Foreground | None,
    ) -> tuple[hub_pb2.RaceIdleResponse, int]:
        """The RaceIdle response for the session's Idle (see :meth:`idle`) and
        its size, built and measured once for every stream: shared, not to be
        changed."""
        idle = self.idle(session, server, generation, styled, foreground)
        rendered = self._rendered(session, styled, generation)
        if rendered.settle is None or rendered.settle[0] is not idle:
            response = hub_pb2.RaceIdleResponse(idle=idle)
            rendered.settle = (idle, response, response.ByteSize())
        return rendered.settle[1], rendered.settle[2]


def _styled_rows(
    lines: tuple[StyledLine, ...], before: list[tuple[StyledLine, types_pb2.StyledLine]]
) -> list[tuple[StyledLine, types_pb2.StyledLine]]:
    """Protobuf rows for ``lines``, reusing those of the rows that did not
    change (the terminal keeps the same spans object for them): a styled
    screen of 3,000 spans took 20 ms to convert, on every change of a cell."""
    rows = []
    for at, line in enumerate(lines):
        if at < len(before) and before[at][0] is line:
            rows.append(before[at])
        else:
            rows.append((line, convert.styled_line_to_pb(line)))
    return rows


# Tag sets whose listing is kept, per server; more are rare (a listing is
# by one tag set at a time), and past this all are dropped.
MAX_BLOCKS = 16


@dataclass(slots=True)
class _Block:
    """A listing in one message, reused while the same messages are listed in
    the same order, so that an answer merges it in one copy: 10,000 remote
    sessions added one by one took 29 ms a call in process, merged 17 ms
    (36 ms -> 12 ms median through gRPC, bench/scale.py; a busy machine)."""

    # The messages it was built from, each built once per change of its session.
    parts: list[types_pb2.Session]
    listing: hub_pb2.ListSessionsResponse
    # The listing's own messages, whose idle times each call sets.
    rows: list[types_pb2.Session]
    # A backend's listing: its inventory's revision, and each row's name.
    revision: int = 0
    names: list[str] = field(default_factory=list)


def _block(
    blocks: dict[frozenset[str], _Block], tags: frozenset[str], parts: list[types_pb2.Session]
) -> _Block:
    if tags not in blocks and len(blocks) >= MAX_BLOCKS:
        blocks.clear()
    listing = hub_pb2.ListSessionsResponse(sessions=parts)
    block = blocks[tags] = _Block(parts, listing, list(listing.sessions))
    return block


def _stamp(rows: list[types_pb2.Session], active_at: Iterable[float]) -> None:
    """Set each row's idle time from the monotonic time of its last activity."""
    now = time.monotonic()
    for row, at in zip(rows, active_at, strict=True):
        idle_ms = int((now - at) * 1000)
        # Written out rather than min(max()): it is the loop of every listing.
        row.last_activity_ms = idle_ms if 0 <= idle_ms <= MAX_MS else 0 if idle_ms < 0 else MAX_MS


class SessionRenderer:
    """This server's sessions as protobuf, built once per change of each.

    A listing converted every session on every call: 1,000 sessions took
    15 ms a call (median; 54 ms p99). Here a session is converted again only
    when its manager announces a change (rename, tags, size, exit) or when
    its generation or foreground moved, which have no events and are
    compared on each call; only its idle time is refreshed on each call, as
    for remote sessions.
    """

    def __init__(self, sessions: SessionManager) -> None:
        self._sessions = sessions
        # Name -> (session, generation, foreground, message).
        self._cache: dict[str, tuple[Session, int, Foreground | None, types_pb2.Session]] = {}
        self._blocks: dict[frozenset[str], _Block] = {}
        sessions.subscribe(self._changed)

    def _changed(self, event: SessionEvent | ActivityChange) -> None:
        if isinstance(event, ActivityChange):
            return  # the generation, compared on each call, tells
        self._cache.pop(event.name, None)
        if event.previous_name:
            self._cache.pop(event.previous_name, None)

    def listing(self, tags: frozenset[str]) -> hub_pb2.ListSessionsResponse:
        """Sessions having any of ``tags`` (all when empty), by name, to merge
        into an answer: shared, not to be changed by the caller."""
        cache = self._cache
        sessions = self._sessions.matching(tags)
        parts = []
        for session in sessions:
            foreground = session.foreground()
            generation = session.activity.generation
            hit = cache.get(session.name)
            if (
                hit is None
                or hit[0] is not session
                or hit[1] != generation
                or (hit[2] is not foreground and hit[2] != foreground)
            ):
                info = session.info(self._sessions.hostname, foreground)
                hit = cache[session.name] = (
                    session,
                    generation,
                    foreground,
                    convert.session_to_pb(info),
                )
            parts.append(hit[3])
        block = self._blocks.get(tags)
        if (
            block is None
            or len(block.parts) != len(parts)
            or any(a is not b for a, b in zip(block.parts, parts, strict=True))
        ):
            block = _block(self._blocks, tags, parts)
        _stamp(block.rows, [session.activity.last_activity for session in sessions])
        return block.listing


class InventoryRenderer:
    """Backends' sessions as protobuf, built once per inventory entry.

    Listing the cluster must stay cheap with thousands of remote sessions:
    an entry is converted again only when the Link replaced it, a backend's
    listing is built again only when its inventory changed, and only the
    idle times are refreshed on each call.
    """

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[
            Backend, dict[str, tuple[SessionInfo, types_pb2.Session]]
        ] = weakref.WeakKeyDictionary()
        self._blocks: weakref.WeakKeyDictionary[Backend, dict[frozenset[str], _Block]] = (
            weakref.WeakKeyDictionary()
        )

    def sessions(self, backend: Backend, tags: frozenset[str]) -> list[types_pb2.Session]:
        """The backend's sessions having any of ``tags`` (all when empty), each
        with its idle time now: shared, not to be changed by the caller."""
        cache = self._cache.setdefault(backend, {})
        if len(cache) > 2 * len(backend.sessions) + 16:
            for gone in cache.keys() - backend.sessions.keys():
                del cache[gone]
        now = time.monotonic()
        out = []
        for info in backend.sessions_matching(tags):
            hit = cache.get(info.name)
            if hit is None or hit[0] is not info:
                hit = cache[info.name] = (info, convert.session_to_pb(info))
            hit[1].last_activity_ms = backend.idle_ms(info.name, now)
            out.append(hit[1])
        return out

    def listing(self, backend: Backend, tags: frozenset[str]) -> hub_pb2.ListSessionsResponse:
        """The backend's sessions having any of ``tags`` (all when empty), to
        merge into an answer: shared, not to be changed by the caller."""
        blocks = self._blocks.setdefault(backend, {})
        block = blocks.get(tags)
        if block is None or block.revision != backend.revision:
            block = _block(blocks, tags, self.sessions(backend, tags))
            block.revision = backend.revision
            block.names = [part.name for part in block.parts]
        _stamp(block.rows, map(backend.active_at.__getitem__, block.names))
        return block.listing
