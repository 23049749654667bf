"""A cluster-wide RaceIdle: this server's race merged with every backend's.

Local sessions are raced by ``LocalRace``. Remote sessions are raced from
what the hub already knows: each backend pushes on its Link which of its
sessions have settled (``SessionTransition``), so the race needs no stream
to any backend. A remote session in scope that has settled, and stayed
quiet for the race's timeout_ms, is confirmed with one AwaitIdle to its
backend, which answers at once with its screen (or waits, if the hub's
knowledge was a moment old). Only backends with settled sessions in scope
get any work; the cost of opening a race does not grow with the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import grpc

from wsh import convert, defaults
from wsh.api import remote
from wsh.errors import WshError
from wsh.federation import sanitize
from wsh.federation.auth import redact
from wsh.federation.manager import Federation
from wsh.federation.registry import Backend, Registry, RegistryEvent, ServerChange
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

# Bytes of settles waiting for the client past which no backend is asked
# for more: a client that stops reading must not grow the hub.
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


# Confirmations (AwaitIdle to a backend) one race has in flight. A race
# opened over 640 settled sessions must not start 640 calls before the
# first answer can be read; and answers that arrive together are checked
# back to back (a 1000x1000 screen takes 13 ms to check and copy: 16 at
# once held the loop for 0.2 s, 0.77 s on a loaded machine).
MAX_CONFIRMS = 4
# A confirmation still waiting after this (READY on a busy program, or a
# session that became active again as the hub looked) stops holding a
# place, so that other sessions are not held back by it.
SLOW_CONFIRM_S = 0.1

# Server -> session -> generation to skip it at.
Skips = Mapping[str, Mapping[str, int]]


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
        skips: Skips,
    ) -> None:
        self._request = request
        self._timeout_ms = timeout_ms
        self._ready = convert.is_ready(request.mode)
        self._federation = federation
        self._registry = federation.registry
        self._scope = scope
        self._tags = frozenset(request.tags)
        self._queue = SettleQueue()
        self._loop = asyncio.get_running_loop()
        # (server, session) -> generation last sent (or skipped at): each
        # generation of a session goes to the client at most once.
        self._last_sent: dict[tuple[str, str], int] = {
            (server, name): generation
            for server, names in skips.items()
            for name, generation in names.items()
        }
        self._confirming: dict[tuple[Backend, str], asyncio.Task[None]] = {}
        self._timers: dict[tuple[Backend, str], asyncio.TimerHandle] = {}
        # Settled sessions waiting for a place to be confirmed, in settle order.
        self._waiting: OrderedDict[tuple[Backend, str], None] = OrderedDict()
        self._places = MAX_CONFIRMS
        self._started_at = time.monotonic()
        self._unsubscribe: Callable[[], None] | None = None
        self._local: LocalRace | None = None
        if scope.here:
            self._local = LocalRace(
                sessions,
                lambda session, generation, foreground: self._queue.put(
                    *render(session, generation, foreground)
                ),
                tags=self._tags,
                timeout_ms=timeout_ms,
                ready=self._ready,
                fresh=request.fresh,
                skip=skips.get(federation.identity.hostname, {}),
            )

    def start(self) -> int:
        """Begin; returns how many sessions in scope cluster-wide can still settle."""
        in_scope = self._local.start() if self._local is not None else 0
        found: list[tuple[float, Backend, str]] = []
        for backend in self._scope.candidates(self._registry):
            for info in backend.sessions_matching(self._tags):
                if not self._done(backend, info):
                    in_scope += 1
                    found.append((backend.active_at[info.name], backend, info.name))
        # Longest settled first, as a local race reports them.
        for _at, backend, name in sorted(found, key=lambda entry: entry[0]):
            self._consider(backend, name)
        self._unsubscribe = self._registry.subscribe(self._on_event)
        return in_scope

    def _done(self, backend: Backend, info: SessionInfo) -> bool:
        """An exited session skipped at its final generation can never settle again."""
        last = self._last_sent.get((backend.hostname, info.name))
        return info.state is SessionState.EXITED and last == info.generation

    def _covers(self, backend: Backend) -> bool:
        return backend.healthy and (self._scope.backends is None or backend in self._scope.backends)

    def _on_event(self, event: RegistryEvent) -> None:
        if isinstance(event, ServerChange):
            self._on_backend(event.backend)
            return
        backend = self._registry.by_hostname(event.server)
        if backend is not None:
            if event.previous_name:
                self._consider(backend, event.previous_name)
            self._consider(backend, event.name)

    def _on_backend(self, backend: Backend) -> None:
        """Added, removed or its health changed: look at every session of it again."""
        for key in [k for k in (*self._timers, *self._waiting) if k[0] is backend]:
            self._drop(key)
        if self._covers(backend):
            for info in list(backend.sessions_matching(self._tags)):
                self._consider(backend, info.name)

    def _drop(self, key: tuple[Backend, str]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._waiting.pop(key, None)

    def _consider(self, backend: Backend, name: str) -> None:
        """Confirm session ``name`` of ``backend`` once the hub knows it has
        settled for the race's timeout (at once for READY: the backend
        decides), and it has moved past what was sent last."""
        key = (backend, name)
        if key in self._confirming:
            return  # looked at again when the confirmation ends
        self._drop(key)
        info = backend.sessions.get(name)
        if (
            info is None
            or name not in backend.quiet
            or not self._covers(backend)
            or (self._tags and self._tags.isdisjoint(info.tags))
        ):
            return  # not (or no longer) a candidate: its next change says
        last = self._last_sent.get((backend.hostname, name))
        if last is not None and info.generation <= last:
            return
        if not self._ready:
            quiet_since = backend.active_at[name]
            if self._request.fresh:
                quiet_since = max(quiet_since, self._started_at)
            due = quiet_since + self._timeout_ms / 1000 - time.monotonic()
            if due > 0:
                self._timers[key] = self._loop.call_later(due, self._consider, backend, name)
                return
        self._waiting[key] = None
        self._dispatch()

    def _dispatch(self) -> None:
        while self._places > 0 and self._waiting:
            key = self._waiting.popitem(last=False)[0]
            self._places -= 1
            backend, name = key
            self._confirming[key] = self._loop.create_task(
                self._confirm(backend, name), name=f"race-confirm-{backend.hostname}/{name}"
            )

    def _confirm_request(self, backend: Backend, name: str) -> hub_pb2.AwaitIdleRequest:
        req = self._request
        out = hub_pb2.AwaitIdleRequest(
            # Naming the backend itself keeps a backend that is a hub too
            # from passing the call on.
            server=backend.hostname,
            name=name,
            timeout_ms=self._timeout_ms,
            # The hub enforces the caller's max_wait.
            max_wait_ms=defaults.MAX_WAIT_CAP_MS,
            format=req.format,
            mode=req.mode,
            # A quiet session is asked only once the hub has seen it quiet
            # for a whole window since the race began; READY inspects anew.
            fresh=req.fresh and self._ready,
        )
        last = self._last_sent.get((backend.hostname, name))
        if last is not None:
            out.last_generation = last
        return out

    async def _confirm(self, backend: Backend, name: str) -> None:
        """Ask ``backend`` for the settle of session ``name`` and send it on.

        The call is asked again when it fails on the way while the Link says
        the backend is healthy (a proxy reset); its verdicts (the session is
        gone) end it, and the session's next change brings it back.
        """
        key = (backend, name)
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._places += 1
                self._dispatch()

        slow = self._loop.call_later(SLOW_CONFIRM_S, release)
        confirmed = False
        try:
            await self._queue.room(MAX_PENDING_BYTES)
            link = self._federation.link(backend)
            failures = 0
            while backend.healthy:
                try:
                    response = await link.hub.AwaitIdle(
                        self._confirm_request(backend, name), metadata=link.metadata
                    )
                except grpc.aio.AioRpcError as err:
                    error = remote.backend_error(link, err)
                    if not (isinstance(error, WshError) and error.reason == "SERVER_UNAVAILABLE"):
                        return
                    failures += 1
                    log.info(
                        "race: confirming %s on backend %s failed (%d), asking again: %s",
                        quote(name),
                        backend.hostname,
                        failures,
                        quote(redact(str(error), [backend.token]), 512),
                    )
                    await asyncio.sleep(remote.retry_delay(failures))
                    continue
                idle = sanitize.clean_idle(response.idle, backend.hostname, name)
                self._offer(hub_pb2.RaceIdleResponse(idle=idle))
                confirmed = True
                return
        except WshError as err:
            # The backend's answer failed the checks: it is logged, and the
            # session waits for its next change.
            log.warning("race: backend %s: %s", backend.hostname, err.message)
        finally:
            slow.cancel()
            del self._confirming[key]
            release()
            if confirmed:
                self._consider(backend, name)

    def _offer(self, response: hub_pb2.RaceIdleResponse) -> None:
        idle = response.idle
        key = (idle.server, idle.session)
        if self._last_sent.get(key, -1) >= idle.generation:
            return
        self._last_sent[key] = idle.generation
        self._queue.put(response, response.ByteSize())

    def fail(self, error: Exception) -> None:
        """End the race's stream with ``error`` (the server is shutting down)."""
        self._queue.fail(error)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for key in list(self._timers):
            self._drop(key)
        self._waiting.clear()
        tasks = list(self._confirming.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
