"""Protobuf screens and inventories, built once and reused across calls."""

from __future__ import annotations

import time
import weakref

from wsh.api import convert
from wsh.federation.registry import Backend
from wsh.sessions.info import SessionInfo
from wsh.sessions.session import Session
from wsh.terminal.screen import ScreenView
from wsh.v1 import types_pb2


class ScreenRenderer:
    """Builds protobuf screens once per rendered view and reuses them.

    Many clients, races and idle waits ask for the same screen; the terminal
    caches its view per output, and this caches the protobuf built from it.
    """

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[
            Session, dict[bool, tuple[ScreenView, types_pb2.Screen]]
        ] = weakref.WeakKeyDictionary()

    def screen(self, session: Session, styled: bool, generation: int) -> types_pb2.Screen:
        view = session.view(styled)
        per_session = self._cache.setdefault(session, {})
        cached = per_session.get(styled)
        if cached is None or cached[0] is not view:
            cached = (view, convert.screen_to_pb(view))
            per_session[styled] = cached
        out = types_pb2.Screen()
        out.CopyFrom(cached[1])
        out.generation = generation
        return out

    def idle(self, session: Session, server: str, generation: int, styled: bool) -> types_pb2.Idle:
        screen = self.screen(session, styled, generation)
        return types_pb2.Idle(
            session=session.name,
            server=server,
            generation=generation,
            screen=screen,
            scrollback_lines=screen.total_lines,
            last_activity_ms=session.activity.idle_ms(),
            exit_code=session.process.exit_code,
        )


class InventoryRenderer:
    """Backends' sessions as protobuf, built once per inventory entry.

    Listing the cluster must stay cheap with thousands of remote sessions:
    an entry is converted again only when the Link replaced it, and only its
    idle time is refreshed on each call.
    """

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[
            Backend, dict[str, tuple[SessionInfo, types_pb2.Session]]
        ] = weakref.WeakKeyDictionary()

    def sessions(self, backend: Backend, tags: frozenset[str]) -> list[types_pb2.Session]:
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
