"""Each session's screen as an MCP resource, ``wsh://SERVER/NAME/screen``, and its updates.

Listing asks the hub for the cluster's sessions; reading is one ``GetScreen``.
A subscribed screen is watched by one task (:class:`ScreenWatches`), however
many clients subscribe to it: an ``AwaitIdle`` past the generation last
reported returns only once new output has settled, so the task sleeps in the
hub until the session changes and never polls. Each change is published to
clients on both protocol eras: to ``subscriptions/listen`` streams (the
2026-07-28 wire, through the MCP server's subscription bus) and as
``notifications/resources/updated`` to sessions that sent
``resources/subscribe`` (earlier revisions).
"""

from __future__ import annotations

import asyncio
import contextlib
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

log = logging.getLogger("wsh.mcp")

SCHEME = "wsh"
TEMPLATE = "wsh://{server}/{name}/screen"
MIME_TYPE = "text/plain"

# A watched screen is reported changed once its output has been quiet this
# long: a screen mid-redraw is not worth a notification, and 100 ms is under
# what a person or an agent notices.
UPDATE_QUIET_MS = 100
# One AwaitIdle of a watch lasts at most this long. A session that prints
# without a pause never settles: past this bound the watch checks its
# generation and reports the change, so such a screen is reported every 10 s.
WATCH_WAIT_MS = 10_000
# After a failure other than the session's end (hub unreachable, backend
# down), a watch waits before asking again, doubling up to the maximum.
RETRY_S = 0.5
RETRY_MAX_S = 10.0
# Screens watched at once by one `wsh mcp`: each holds an AwaitIdle open on
# the hub, which allows 2,048 per peer, and the tools need some too.
MAX_WATCHES = 1024


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
    task: asyncio.Task[None]
    holders: int = 1


@dataclass
class ScreenWatches:
    """One watching task per subscribed screen, counted by its subscribers.

    ``publish(uri)`` is called after each change; :meth:`close` cancels every
    task (the server's shutdown). A ``subscriptions/listen`` stream holds its
    screens while it is open. A ``resources/subscribe`` holds its screen until
    ``resources/unsubscribe``, or until a notification to its connection
    fails: one that went away silently holds it until its screen next
    changes, within :data:`MAX_WATCHES`.
    """

    client: AsyncClient
    publish: Callable[[str], Awaitable[None]]
    _watches: dict[str, _Watch] = field(default_factory=dict)
    # Connections of the earlier protocol revisions by the URIs they
    # subscribed, each with a session (request proxy) that can still notify it.
    _legacy: dict[str, dict[object, ServerSession]] = field(default_factory=dict)

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
        task = asyncio.create_task(self._watch(screen), name=f"wsh-mcp-watch {screen.uri}")
        self._watches[screen.uri] = _Watch(task)

    def release(self, screen: ScreenUri) -> None:
        """One subscriber fewer; the last one stops the watch."""
        watch = self._watches.get(screen.uri)
        if watch is None:
            return
        watch.holders -= 1
        if watch.holders <= 0:
            del self._watches[screen.uri]
            watch.task.cancel()

    async def close(self) -> None:
        """Cancel every watch and wait for them to end."""
        tasks = [watch.task for watch in self._watches.values()]
        self._watches.clear()
        self._legacy.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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

    # --- The watch ----------------------------------------------------------------

    async def _watch(self, screen: ScreenUri) -> None:
        """Publish ``screen``'s URI each time its session's output settles after a change."""
        generation: int | None = None
        retry_s = RETRY_S
        while True:
            try:
                if generation is None:
                    found = await self.client.get_session(screen.name, server=screen.server)
                    if found.HasField("exit_code"):
                        return  # its screen can never change again
                    generation = found.generation
                idle = await self.client.await_idle(
                    screen.name,
                    server=screen.server,
                    timeout_ms=UPDATE_QUIET_MS,
                    max_wait_ms=WATCH_WAIT_MS,
                    last_generation=generation,
                    timeout=WATCH_WAIT_MS / 1000 + RETRY_MAX_S,
                )
                retry_s = RETRY_S
                if idle.generation == generation and not idle.HasField("exit_code"):
                    # Not new activity (the hub answered early): never a tight loop.
                    await asyncio.sleep(retry_s)
                    continue
                generation = idle.generation
                await self.publish(screen.uri)
                if idle.HasField("exit_code"):
                    return
            except WshRpcError as exc:
                if exc.reason == "IDLE_TIMEOUT":
                    # Nothing settled within the bound: quiet all along, or busy
                    # all along, which is a change too.
                    now = await self._generation(screen)
                    if now is not None and now != generation:
                        generation = now
                        await self.publish(screen.uri)
                    continue
                if exc.reason == "SESSION_NOT_FOUND" or exc.code == grpc.StatusCode.NOT_FOUND:
                    await self.publish(screen.uri)  # a read now fails: it is gone
                    return
                log.info("watch of %s: %s; retrying", printable(screen.uri), printable(str(exc)))
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)

    async def _generation(self, screen: ScreenUri) -> int | None:
        with contextlib.suppress(WshRpcError):
            return (await self.client.get_session(screen.name, server=screen.server)).generation
        return None


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
