"""WatchSessions: the cluster's session and server events, pushed to every watcher.

One ``Watches`` per server listens to this server's ``SessionManager`` and
to the federation ``Registry`` (which the Links feed as backends report
changes): no watch polls anything, nor opens a stream to a backend. Each
event is converted to protobuf once and handed to every open watch whose
filter wants it; a watch that reads too slowly never holds anything back:
past ``MAX_PENDING`` events its queue is dropped and it gets a new snapshot
(``resync``) when it reads again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Callable

from wsh import convert
from wsh.api.render import InventoryRenderer
from wsh.federation.registry import (
    Backend,
    Registry,
    RegistryEvent,
    ServerChange,
    ServerChangeKind,
)
from wsh.sessions import changes
from wsh.sessions.changes import ChangeKind, SessionChange
from wsh.sessions.info import SessionInfo
from wsh.sessions.manager import ActivityChange, SessionEvent, SessionManager
from wsh.v1 import hub_pb2

# Events a watcher may have waiting before it is resynchronised instead. The
# responses are shared by all watchers, so a full queue costs a watcher only
# its references (32 KiB); a burst larger than this (16 backends of 50
# sessions coming back at once makes about 820) is rare.
MAX_PENDING = 4096

_SERVER_EVENTS = {
    ServerChangeKind.ADDED: hub_pb2.WATCH_EVENT_SERVER_ADDED,
    ServerChangeKind.REMOVED: hub_pb2.WATCH_EVENT_SERVER_REMOVED,
    ServerChangeKind.HEALTH_CHANGED: hub_pb2.WATCH_EVENT_SERVER_HEALTH_CHANGED,
}


class _Resync:
    """What a watcher reads once it fell behind: a new snapshot is due."""


_RESYNC = _Resync()


class Watcher:
    """One WatchSessions stream: its filter and its bounded queue of events."""

    def __init__(self, server: str, tags: frozenset[str], limit: int = MAX_PENDING) -> None:
        # Empty: every server.
        self.server = server
        self.tags = tags
        self._limit = limit
        self._events: deque[hub_pb2.WatchSessionsResponse] = deque()
        self._behind = False
        self._failure: Exception | None = None
        self._ready = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._events)

    def wants_server(self, hostname: str) -> bool:
        return not self.server or self.server == hostname

    def put(self, response: hub_pb2.WatchSessionsResponse) -> None:
        if self._behind:
            return
        if len(self._events) >= self._limit:
            self._events.clear()
            self._behind = True
        else:
            self._events.append(response)
        self._ready.set()

    def fail(self, error: Exception) -> None:
        """End the stream with ``error`` (the server is shutting down)."""
        self._failure = error
        self._ready.set()

    def synced(self) -> None:
        """A new snapshot was taken: events from now on are queued again."""
        self._events.clear()
        self._behind = False

    async def get(self) -> hub_pb2.WatchSessionsResponse | _Resync:
        while True:
            if self._failure is not None:
                raise self._failure
            if self._behind:
                return _RESYNC
            if self._events:
                return self._events.popleft()
            self._ready.clear()
            await self._ready.wait()


def change_to_pb(change: SessionChange) -> hub_pb2.WatchSessionsResponse:
    """A session change as the response every watcher gets."""
    response = hub_pb2.WatchSessionsResponse(
        event=convert.watch_event(change.kind),
        server=change.server,
        session=change.name,
        previous_name=change.previous_name,
        previous_tags=change.previous_tags,
        generation=change.generation,
        quiet=change.kind is ChangeKind.IDLE,
        quiet_ms=change.quiet_ms,
    )
    if change.info is not None:
        response.session_info.CopyFrom(convert.session_to_pb(change.info))
    return response


class Watches:
    """Every open WatchSessions stream of this server, and what feeds them."""

    def __init__(
        self,
        hostname: str,
        sessions: SessionManager,
        registry: Registry,
        local_server: Callable[[], hub_pb2.Server],
        backend_server: Callable[[Backend], hub_pb2.Server],
    ) -> None:
        self._hostname = hostname
        self._sessions = sessions
        self._registry = registry
        self._local_server = local_server
        self._backend_server = backend_server
        self._inventory = InventoryRenderer()
        self._watchers: set[Watcher] = set()
        # This server's sessions as last reported, to tell what each upsert
        # changed (the registry keeps the same for each backend).
        self._local: dict[str, SessionInfo] = {
            s.name: sessions.info(s) for s in sessions.matching()
        }
        self._unsubscribe = (
            sessions.subscribe(self._on_local),
            registry.subscribe(self._on_registry),
        )

    def __len__(self) -> int:
        return len(self._watchers)

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def fail(self, error: Exception) -> None:
        """End every open watch with ``error`` (server shutdown)."""
        for watcher in self._watchers:
            watcher.fail(error)

    # -- feeding ----------------------------------------------------------------

    def _on_local(self, event: SessionEvent | ActivityChange) -> None:
        local = self._local
        if isinstance(event, ActivityChange):
            known = local.get(event.name)
            if known is not None:
                # The generation as of the change, not as last upserted.
                info = dataclasses.replace(known, generation=event.generation)
                self._on_session(changes.activity(info, event.quiet, event.quiet_ms))
            return
        if event.info is not None:
            old = local.pop(event.previous_name) if event.previous_name in local else None
            if old is None:
                old = local.get(event.name)
            local[event.name] = event.info
            found = changes.upserted(old, event.info, event.previous_name if old else "")
        else:
            gone = local.pop(event.name, None)
            if gone is None:
                return
            how = ChangeKind.EXPIRED if event.expired else ChangeKind.KILLED
            found = [changes.removed(gone, how)]
        for change in found:
            self._on_session(change)

    def _on_registry(self, event: RegistryEvent) -> None:
        if isinstance(event, ServerChange):
            self._on_server(event)
        else:
            self._on_session(event)

    def _on_session(self, change: SessionChange) -> None:
        response = None
        for watcher in self._watchers:
            if watcher.wants_server(change.server) and change.in_scope(watcher.tags):
                if response is None:
                    response = change_to_pb(change)
                watcher.put(response)

    def _on_server(self, change: ServerChange) -> None:
        response = None
        for watcher in self._watchers:
            if watcher.wants_server(change.backend.hostname):
                if response is None:
                    server = self._backend_server(change.backend)
                    response = hub_pb2.WatchSessionsResponse(
                        event=_SERVER_EVENTS[change.kind],
                        server=server.hostname,
                        server_info=server,
                    )
                watcher.put(response)

    # -- serving ----------------------------------------------------------------

    def _snapshot(self, watcher: Watcher, resyncs: int) -> list[hub_pb2.WatchSessionsResponse]:
        """Everything in the watcher's scope as it is now, then SYNCED; built in
        one step of the event loop, so no change falls between it and the
        events that follow."""
        resync = resyncs > 0
        out = []

        def add(**fields: object) -> None:
            out.append(hub_pb2.WatchSessionsResponse(resync=resync, resyncs=resyncs, **fields))  # type: ignore[arg-type]

        backends = [b for b in self._registry if watcher.wants_server(b.hostname)]
        here = watcher.wants_server(self._hostname)
        if here:
            add(
                event=hub_pb2.WATCH_EVENT_SERVER,
                server=self._hostname,
                server_info=self._local_server(),
            )
        for backend in backends:
            add(
                event=hub_pb2.WATCH_EVENT_SERVER,
                server=backend.hostname,
                server_info=self._backend_server(backend),
            )
        if here:
            for session in self._sessions.matching(watcher.tags):
                add(
                    event=hub_pb2.WATCH_EVENT_SESSION,
                    server=self._hostname,
                    session=session.name,
                    session_info=convert.session_to_pb(self._sessions.info(session)),
                    quiet=session.activity.settled,
                )
        for backend in backends:
            for pb in self._inventory.sessions(backend, watcher.tags):
                add(
                    event=hub_pb2.WATCH_EVENT_SESSION,
                    server=backend.hostname,
                    session=pb.name,
                    session_info=pb,
                    quiet=pb.name in backend.quiet,
                )
        add(event=hub_pb2.WATCH_EVENT_SYNCED)
        watcher.synced()
        return out

    async def stream(self, watcher: Watcher) -> AsyncIterator[hub_pb2.WatchSessionsResponse]:
        """The watcher's snapshot, then its events until the caller stops."""
        self._watchers.add(watcher)
        try:
            resyncs = 0
            snapshot = self._snapshot(watcher, resyncs)
            while True:
                for response in snapshot:
                    yield response
                snapshot = []
                while not snapshot:
                    item = await watcher.get()
                    if isinstance(item, _Resync):
                        resyncs += 1
                        snapshot = self._snapshot(watcher, resyncs)
                    else:
                        yield item
        finally:
            self._watchers.discard(watcher)
