"""Each session's screen as an MCP resource, ``wsh://SERVER/NAME/screen``, and its updates.

Listing asks the hub for the cluster's sessions; reading is one ``GetScreen``.
Subscribed screens are watched by one ``WatchSessions`` stream
(:class:`ScreenWatches`), however many screens and clients there are: the hub
pushes each session's changes, so nothing polls. A screen is reported when
its session's output settles after a change, when it exits, is resized or
goes away, and every watched screen once when changes may have been missed
(the stream resynchronised or reopened). Each change is published to
clients on both protocol eras: to ``subscriptions/listen`` streams (the
2026-07-28 wire, through the MCP server's subscription bus) and as
``notifications/resources/updated`` to sessions that sent
``resources/subscribe`` (earlier revisions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

import grpc
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.session import ServerSession
from mcp.types import Resource, ResourceTemplate

from wsh.client import AsyncClient, WshRpcError
from wsh.mcp.screens import CURSOR_NOTE, screen_text, session_state
from wsh.text import printable
from wsh.v1 import hub_pb2

log = logging.getLogger("wsh.mcp")

SCHEME = "wsh"
TEMPLATE = "wsh://{server}/{name}/screen"
MIME_TYPE = "text/plain"

# After the WatchSessions stream fails (hub unreachable or restarting), wait
# this long before opening it again, doubling up to the maximum; a snapshot
# received resets the wait.
RETRY_S = 0.5
RETRY_MAX_S = 10.0
# A session that prints without a pause never settles, so no SESSION_IDLE
# reports its screen: while it is busy, it is reported on each tick of this
# period instead.
BUSY_REPORT_S = 10.0
# Screens watched at once by one `wsh mcp`. One stream serves them all; the
# bound is on this process's bookkeeping and on the notifications a resync
# sends at once (one per watched screen).
MAX_WATCHES = 1024
# How long a new subscription waits for the stream's snapshot before it is
# answered, so that a change made right after is reported; past it (the hub
# unreachable) it is answered anyway and the reopened stream reports every
# watched screen once.
SYNC_WAIT_S = 2.0

W = hub_pb2
# The session is gone: a read of its screen now fails.
GONE = frozenset(
    {W.WATCH_EVENT_SESSION_KILLED, W.WATCH_EVENT_SESSION_EXPIRED, W.WATCH_EVENT_SESSION_REMOVED}
)
# Its screen changed: output settled, the process exited, a new size, or a
# session of that name appeared.
CHANGED = frozenset(
    {
        W.WATCH_EVENT_SESSION_IDLE,
        W.WATCH_EVENT_SESSION_EXITED,
        W.WATCH_EVENT_SESSION_RESIZED,
        W.WATCH_EVENT_SESSION_CREATED,
    }
)


@dataclass(frozen=True, slots=True)
class ScreenUri:
    """The session a screen resource names."""

    server: str
    name: str

    @property
    def uri(self) -> str:
        return f"{SCHEME}://{self.server}/{quote(self.name, safe='')}/screen"


def parse_uri(uri: str) -> ScreenUri | None:
    """The session of a ``wsh://SERVER/NAME/screen`` URI, or None for any other URI."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    segments = parts.path.split("/")
    if (
        parts.scheme != SCHEME
        or not parts.netloc
        or parts.query
        or parts.fragment
        or len(segments) != 3
        or segments[0]
        or segments[2] != "screen"
        or not segments[1]
    ):
        return None
    return ScreenUri(parts.netloc, unquote(segments[1]))


def _connection(session: ServerSession) -> object:
    """The connection a request's session belongs to: the SDK builds a
    ``ServerSession`` per request, and 2.3 names its connection only privately."""
    return cast(object, session._connection)


class TooManyWatches(Exception):
    """More screens subscribed than :data:`MAX_WATCHES`."""


@dataclass
class _Watch:
    screen: ScreenUri
    holders: int = 1
    # Whether its session exists, as far as the stream told: one gone is
    # reported once, then again only when a session of that name appears.
    live: bool = True
    # Output since it last settled (SESSION_BUSY, no SESSION_IDLE yet).
    busy: bool = False


@dataclass
class ScreenWatches:
    """The subscribed screens, each counted by its subscribers, and the one
    ``WatchSessions`` stream that reports their changes.

    The stream is open while at least one screen is watched. ``publish(uri)``
    is called after each change of a watched screen; :meth:`close` ends the
    stream (the server's shutdown). A ``subscriptions/listen`` stream holds
    its screens while it is open. A ``resources/subscribe`` holds its screen
    until ``resources/unsubscribe``, or until a notification to its
    connection fails: one that went away silently holds it until its screen
    next changes, within :data:`MAX_WATCHES`.
    """

    client: AsyncClient
    publish: Callable[[str], Awaitable[None]]
    _watches: dict[str, _Watch] = field(default_factory=dict)
    # Connections of the earlier protocol revisions by the URIs they
    # subscribed, each with a session (request proxy) that can still notify it.
    _legacy: dict[str, dict[object, ServerSession]] = field(default_factory=dict)
    _stream: asyncio.Task[None] | None = None
    # Streams cancelled by the last release, until they have ended.
    _stopping: set[asyncio.Task[None]] = field(default_factory=set)
    # Set once the open stream has its snapshot; cleared while it reopens.
    _synced: asyncio.Event = field(default_factory=asyncio.Event)

    def __len__(self) -> int:
        return len(self._watches)

    def acquire(self, screen: ScreenUri) -> None:
        """Start watching ``screen``, or count one more subscriber of it."""
        watch = self._watches.get(screen.uri)
        if watch is not None:
            watch.holders += 1
            return
        if len(self._watches) >= MAX_WATCHES:
            raise TooManyWatches(f"at most {MAX_WATCHES} screens can be subscribed at once")
        self._watches[screen.uri] = _Watch(screen)
        if self._stream is None:
            self._synced.clear()
            self._stream = asyncio.create_task(self._run(), name="wsh-mcp-watch-sessions")

    def release(self, screen: ScreenUri) -> None:
        """One subscriber fewer; the last one of the last screen ends the stream."""
        watch = self._watches.get(screen.uri)
        if watch is None:
            return
        watch.holders -= 1
        if watch.holders <= 0:
            del self._watches[screen.uri]
            if not self._watches:
                self._stop()

    async def synced(self) -> bool:
        """Wait (at most :data:`SYNC_WAIT_S`) until the stream has its
        snapshot, after which every change of a watched screen is reported;
        return whether it has."""
        try:
            async with asyncio.timeout(SYNC_WAIT_S):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """End the stream and wait for it."""
        self._watches.clear()
        self._legacy.clear()
        self._stop()
        await asyncio.gather(*self._stopping, return_exceptions=True)

    def _stop(self) -> None:
        task, self._stream = self._stream, None
        if task is not None:
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    # --- resources/subscribe (protocol revisions before 2026-07-28) ---------------

    def subscribe(self, session: ServerSession, screen: ScreenUri) -> None:
        """``session``'s connection subscribed to ``screen`` (again: no effect)."""
        subscribers = self._legacy.setdefault(screen.uri, {})
        connection = _connection(session)
        if connection not in subscribers:
            self.acquire(screen)
        subscribers[connection] = session

    def unsubscribe(self, session: ServerSession, screen: ScreenUri) -> None:
        self._drop(_connection(session), screen)

    def _drop(self, connection: object, screen: ScreenUri) -> None:
        subscribers = self._legacy.get(screen.uri)
        if subscribers is None or subscribers.pop(connection, None) is None:
            return
        if not subscribers:
            del self._legacy[screen.uri]
        self.release(screen)

    async def notify_legacy(self, uri: str) -> None:
        """Send ``notifications/resources/updated`` to each connection subscribed to ``uri``."""
        screen = parse_uri(uri)
        for connection, session in list(self._legacy.get(uri, {}).items()):
            try:
                await session.send_resource_updated(uri)
            except Exception:  # a closed or broken connection: its subscription ends
                log.debug("dropping the subscription of a closed session to %s", printable(uri))
                if screen is not None:
                    self._drop(connection, screen)

    # --- The stream ---------------------------------------------------------------

    async def _run(self) -> None:
        """The stream's task: its events, and the ticks that report busy screens."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow(), name="wsh-mcp-watch-events")
            group.create_task(self._report_busy(), name="wsh-mcp-watch-busy")

    async def _follow(self) -> None:
        """Read the stream, reopening it after a failure, with backoff."""
        retry_s = RETRY_S
        reopened = False
        while True:
            try:
                # One stream for the whole cluster, unfiltered: the hub sends
                # every session's events here (a BUSY and an IDLE per burst of
                # output, 23 and 27 bytes of protobuf for a session "job-17"
                # on "build-1", and the lifecycle events) and those of
                # unwatched screens are dropped. Filtering by server
                # would only help while every watched screen is on one server,
                # and would reopen the stream, snapshot and all, whenever that
                # changed.
                async with self.client.watch_sessions() as stream:
                    # Sessions of the snapshot being read (URI: settled), or None.
                    snapshot: dict[str, bool] | None = {}
                    async for event in stream:
                        if snapshot is None and event.resync:
                            snapshot = {}  # fell behind: changes were dropped
                        if snapshot is None:
                            await self._apply(event)
                        elif event.event == W.WATCH_EVENT_SESSION:
                            snapshot[ScreenUri(event.server, event.session).uri] = event.quiet
                        elif event.event == W.WATCH_EVENT_SYNCED:
                            await self._resync(snapshot, missed=reopened or event.resync)
                            snapshot, reopened, retry_s = None, False, RETRY_S
                log.info("the hub ended the watch of sessions; reopening")
            except WshRpcError as exc:
                log.info("watch of sessions: %s; reopening", printable(str(exc)))
            self._synced.clear()
            await asyncio.sleep(retry_s)
            retry_s = min(retry_s * 2, RETRY_MAX_S)
            reopened = True

    async def _resync(self, snapshot: dict[str, bool], *, missed: bool) -> None:
        """Take a snapshot's state; with ``missed`` (a resync, or the stream
        reopened), report each watched screen that may have changed since: every
        one whose session existed before or exists now."""
        for uri, watch in list(self._watches.items()):
            settled = snapshot.get(uri)
            was_live, watch.live, watch.busy = watch.live, settled is not None, settled is False
            if missed and (was_live or watch.live):
                await self.publish(uri)
        self._synced.set()

    async def _apply(self, event: hub_pb2.WatchSessionsResponse) -> None:
        """Report the screen ``event`` changed, if it is watched."""
        kind = event.event
        if kind == W.WATCH_EVENT_SERVER_HEALTH_CHANGED:
            # Its sessions' screens can no longer be read, or can again.
            for uri, held in list(self._watches.items()):
                if held.screen.server == event.server and held.live:
                    await self.publish(uri)
            return
        if kind == W.WATCH_EVENT_SESSION_RENAMED:
            await self._gone(ScreenUri(event.server, event.previous_name).uri)
        watch = self._watches.get(ScreenUri(event.server, event.session).uri)
        if watch is None or not event.session:
            return
        if kind == W.WATCH_EVENT_SESSION_BUSY:
            watch.busy = True
        elif kind in GONE:
            await self._gone(watch.screen.uri)
        elif kind in CHANGED or kind == W.WATCH_EVENT_SESSION_RENAMED:
            watch.live = True
            if kind in (W.WATCH_EVENT_SESSION_IDLE, W.WATCH_EVENT_SESSION_EXITED):
                watch.busy = False
            await self.publish(watch.screen.uri)

    async def _gone(self, uri: str) -> None:
        watch = self._watches.get(uri)
        if watch is not None and watch.live:
            watch.live = watch.busy = False
            await self.publish(uri)

    async def _report_busy(self) -> None:
        """Report each screen that is busy at a tick: it changed, and may not
        settle for a long while."""
        while True:
            await asyncio.sleep(BUSY_REPORT_S)
            for uri, watch in list(self._watches.items()):
                if watch.busy:
                    await self.publish(uri)


class ScreenResources:
    """Listing and reading the screens of the cluster's sessions."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def list_screens(self) -> list[Resource]:
        sessions = await self.client.list_sessions()
        return [
            Resource(
                uri=ScreenUri(s.server, s.name).uri,
                name=f"{s.name}@{s.server}",
                title=f"Screen of {s.name} on {s.server}",
                description=f"{session_state(s)}; tags: {', '.join(s.tags) or 'none'}",
                mime_type=MIME_TYPE,
            )
            for s in sessions
        ]

    @staticmethod
    def templates() -> list[ResourceTemplate]:
        return [
            ResourceTemplate(
                uri_template=TEMPLATE,
                name="screen",
                title="A session's screen",
                description="The visible screen of session NAME on server SERVER, as text. "
                + CURSOR_NOTE,
                mime_type=MIME_TYPE,
            )
        ]

    async def read(self, screen: ScreenUri) -> list[ReadResourceContents]:
        try:
            shown = await self.client.get_screen(screen.name, server=screen.server)
        except WshRpcError as exc:
            message = f"{exc.reason or exc.code.name}: {printable(exc.message, 2000)}"
            if exc.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise ResourceNotFoundError(message) from None
            raise ResourceError(message) from None
        meta: dict[str, Any] = {"generation": shown.generation}
        return [ReadResourceContents(screen_text(shown), MIME_TYPE, meta)]
