"""A cluster-wide RaceIdle: this server's race merged with every backend's.

Local sessions are raced by ``LocalRace``; each healthy backend in scope
gets its own RaceIdle stream (local-only on its side) pumped into the same
queue. Backends that become healthy while the race is open join it; a
backend whose stream fails drops out and the race goes on with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc

from wsh import convert, defaults
from wsh.api import remote
from wsh.errors import WshError
from wsh.federation import sanitize
from wsh.federation.auth import redact
from wsh.federation.manager import Federation
from wsh.federation.registry import Backend, Registry
from wsh.sessions.info import SessionInfo, SessionState
from wsh.sessions.manager import SessionManager
from wsh.sessions.race import LocalRace
from wsh.sessions.session import Session
from wsh.terminal.foreground import Foreground
from wsh.text import quote
from wsh.v1 import hub_pb2

log = logging.getLogger(__name__)

# A settled local session (with the foreground found as it settled) as the
# response every stream sends, and its size.
RenderSettle = Callable[[Session, int, Foreground | None], tuple[hub_pb2.RaceIdleResponse, int]]

# Bytes of settles waiting for the client past which backends' streams are
# not read further (HTTP/2 flow control then holds the backends back): a
# backend that sends without end must not grow the hub, nor a client that
# stops reading.
MAX_PENDING_BYTES = 8 * 1024 * 1024


class SettleQueue:
    """Settled sessions waiting to be sent, first settled first, one entry per session.

    A client that reads slowly must not make this grow: a newer settle of a
    session still waiting replaces the older one (and goes to the back, as it
    settled later), so the queue never holds more entries than sessions.
    Entries are the responses as sent, with their size measured once by
    whoever built them: a local one is shared by every stream (ByteSize
    walks the whole message: 27 ms for a 3.75 MB styled screen).
    """

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, str], tuple[hub_pb2.RaceIdleResponse, int]] = (
            OrderedDict()
        )
        self._waiter: asyncio.Future[None] | None = None
        self._failure: Exception | None = None
        self.pending_bytes = 0
        self._taken = asyncio.Event()

    def put(self, response: hub_pb2.RaceIdleResponse, size: int) -> None:
        key = (response.idle.server, response.idle.session)
        replaced = self._items.pop(key, None)
        if replaced is not None:
            self.pending_bytes -= replaced[1]
        self._items[key] = (response, size)
        self.pending_bytes += size
        self._wake()

    def fail(self, error: Exception) -> None:
        """End the stream: ``get`` raises ``error`` from now on."""
        self._failure = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> hub_pb2.RaceIdleResponse:
        while not self._items:
            if self._failure is not None:
                raise self._failure
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        response, size = self._items.popitem(last=False)[1]
        self.pending_bytes -= size
        self._taken.set()
        return response

    async def room(self, limit: int) -> None:
        """Return once fewer than ``limit`` bytes of settles are waiting."""
        while self.pending_bytes >= limit:
            self._taken.clear()
            await self._taken.wait()


@dataclass(frozen=True, slots=True)
class RaceScope:
    """The servers a race covers: this one, one backend, or the whole cluster."""

    here: bool
    # None: every healthy backend, now and later; else only this one (or none).
    backends: tuple[Backend, ...] | None

    @classmethod
    def cluster(cls) -> RaceScope:
        return cls(here=True, backends=None)

    @classmethod
    def only_here(cls) -> RaceScope:
        return cls(here=True, backends=())

    @classmethod
    def on(cls, backend: Backend) -> RaceScope:
        return cls(here=False, backends=(backend,))

    def candidates(self, registry: Registry) -> list[Backend]:
        """The backends to race on right now."""
        if self.backends is None:
            return registry.healthy()
        return [b for b in self.backends if b.healthy]


class ClusterRace:
    """Merges settles from this server and its healthy backends, first settled first."""

    def __init__(
        self,
        request: hub_pb2.RaceIdleRequest,
        *,
        timeout_ms: int,
        sessions: SessionManager,
        render: RenderSettle,
        federation: Federation,
        scope: RaceScope,
    ) -> None:
        self._request = request
        self._timeout_ms = timeout_ms
        self._federation = federation
        self._scope = scope
        self._tags = frozenset(request.tags)
        self._queue = SettleQueue()
        self._last_sent: dict[tuple[str, str], int] = {}
        self._pumps: dict[Backend, asyncio.Task[None]] = {}
        self._started_at = time.monotonic()
        self._watcher: asyncio.Task[None] | None = None
        self._local: LocalRace | None = None
        if scope.here:
            own = federation.identity.hostname
            skip_here = request.last_server in ("", own)
            self._local = LocalRace(
                sessions,
                lambda session, generation, foreground: self._queue.put(
                    *render(session, generation, foreground)
                ),
                tags=self._tags,
                timeout_ms=timeout_ms,
                ready=convert.is_ready(request.mode),
                fresh=request.fresh,
                skip_name=request.last_session if skip_here else "",
                skip_generation=request.last_generation
                if request.HasField("last_generation")
                else None,
            )

    def _candidates(self) -> list[Backend]:
        return self._scope.candidates(self._federation.registry)

    def start(self) -> int:
        """Begin; returns how many sessions in scope cluster-wide can still settle."""
        in_scope = self._local.start() if self._local is not None else 0
        for backend in self._candidates():
            in_scope += sum(
                1 for info in backend.sessions_matching(self._tags) if not self._done(backend, info)
            )
        self._start_pumps()
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch_registry(), name="race-registry-watch"
        )
        return in_scope

    def _done(self, backend: Backend, info: SessionInfo) -> bool:
        """An exited session skipped at its final generation can never settle again."""
        req = self._request
        return (
            info.state is SessionState.EXITED
            and req.last_server == backend.hostname
            and req.last_session == info.name
            and req.HasField("last_generation")
            and req.last_generation == info.generation
        )

    def _start_pumps(self) -> None:
        for backend in self._candidates():
            if backend not in self._pumps:
                self._pumps[backend] = asyncio.get_running_loop().create_task(
                    self._pump(backend), name=f"race-pump-{backend.hostname}"
                )

    async def _watch_registry(self) -> None:
        changes = self._federation.registry.changes
        seen = changes.version
        while True:
            seen = await changes.wait(seen)
            self._start_pumps()

    async def _pump(self, backend: Backend) -> None:
        """Keep one RaceIdle leg open to ``backend`` while its Link is healthy.

        A leg can fail while the backend is fine: a proxy in between resets
        streams that carry no data for a while (Envoy's stream_idle_timeout,
        nginx's grpc_read_timeout). The leg is then reopened, after a short
        backoff, with the same skip rules; settles it reports again are
        dropped by ``_offer``. A backend that went down rejoins through the
        registry watcher once it is back.
        """
        failures = 0
        try:
            while backend.healthy:
                try:
                    await self._pump_stream(backend)
                    return
                except (WshError, grpc.aio.AioRpcError) as err:
                    failures += 1
                    log.info(
                        "race: leg to backend %s failed (%d), reopening: %s",
                        backend.hostname,
                        failures,
                        quote(redact(str(err), [backend.token]), 512),
                    )
                await asyncio.sleep(remote.retry_delay(failures))
        finally:
            if self._pumps.get(backend) is asyncio.current_task():
                del self._pumps[backend]

    def _backend_request(self, backend: Backend) -> hub_pb2.RaceIdleRequest:
        req = self._request
        out = hub_pb2.RaceIdleRequest(
            tags=req.tags,
            # Naming the backend itself scopes the leg to its own sessions: a
            # backend that is a hub too must not race its own backends.
            server=backend.hostname,
            timeout_ms=self._timeout_ms,
            # The hub enforces the caller's max_wait; a backend stream that
            # ended on its own clock would only have to be reopened.
            max_wait_ms=defaults.MAX_WAIT_CAP_MS,
            format=req.format,
            # The backend decides readiness for its own sessions.
            mode=req.mode,
            # A reopened leg need not wait out a fresh window the race has
            # already observed since it began.
            fresh=req.fresh and time.monotonic() - self._started_at < self._timeout_ms / 1000,
        )
        if req.last_server and req.last_server == backend.hostname:
            out.last_session = req.last_session
            out.last_server = backend.hostname
            if req.HasField("last_generation"):
                out.last_generation = req.last_generation
        return out

    async def _pump_stream(self, backend: Backend) -> None:
        link = self._federation.link(backend)
        changes = self._federation.registry.changes
        seen = changes.version
        while backend.healthy:
            if not any(backend.sessions_matching(self._tags)):
                seen = await changes.wait(seen)
                continue
            seen = changes.version
            stream = link.hub.RaceIdle(self._backend_request(backend), metadata=link.metadata)
            try:
                async for response in stream:
                    sanitize.clean_idle(response.idle, backend.hostname)
                    self._offer(response)
                    await self._queue.room(MAX_PENDING_BYTES)
            except grpc.aio.AioRpcError as err:
                if err.code() not in (
                    grpc.StatusCode.NOT_FOUND,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
                # Nothing in scope there (any more): wait for its inventory to change.
                seen = await changes.wait(seen)
            finally:
                stream.cancel()

    def _offer(self, response: hub_pb2.RaceIdleResponse) -> None:
        idle = response.idle
        key = (idle.server, idle.session)
        # A reopened backend stream reports settled sessions again: each
        # generation goes to the client at most once.
        if self._last_sent.get(key, -1) >= idle.generation:
            return
        self._last_sent[key] = idle.generation
        self._queue.put(response, response.ByteSize())

    def fail(self, error: Exception) -> None:
        """End the race's stream with ``error`` (the server is shutting down)."""
        self._queue.fail(error)

    async def close(self) -> None:
        tasks = list(self._pumps.values())
        if self._watcher is not None:
            tasks.append(self._watcher)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pumps.clear()
        if self._local is not None:
            await self._local.close()

    async def stream(
        self, max_wait_s: float, on_timeout: Exception
    ) -> AsyncIterator[hub_pb2.RaceIdleResponse]:
        """Yield settles until the caller stops; ``on_timeout`` after ``max_wait_s`` of none."""
        while True:
            try:
                async with asyncio.timeout(max_wait_s):
                    response = await self._queue.get()
            except TimeoutError:
                raise on_timeout from None
            yield response
