"""BackendService: this server's end of a hub's Link stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from wsh import convert
from wsh.api.limits import StreamLimits
from wsh.api.status import Ctx, streaming
from wsh.defaults import LINK_HANDSHAKE_TIMEOUT_S
from wsh.errors import Kind, WshError
from wsh.identity import ServerIdentity
from wsh.sessions.manager import ActivityChange, SessionEvent, SessionManager
from wsh.v1 import backend_pb2, backend_pb2_grpc

log = logging.getLogger(__name__)

# Inventory changes a slow hub may fall behind by before its Link is ended;
# it reconnects and gets a fresh inventory instead of an unbounded queue here.
MAX_BACKLOG = 4096


class _Overflow:
    """Queued once when the backlog is full: the Link ends there."""


_OVERFLOW = _Overflow()


class BackendServicer(backend_pb2_grpc.BackendServiceServicer):
    """Sends identity, inventory, heartbeat acks and inventory changes to a hub."""

    def __init__(
        self, identity: ServerIdentity, sessions: SessionManager, limits: StreamLimits
    ) -> None:
        self._identity = identity
        self._sessions = sessions
        self._limits = limits
        # One per open Link: ends it cleanly (see end_links).
        self._enders: set[Callable[[], None]] = set()

    def end_links(self) -> None:
        """Server shutdown: end every Link now, cleanly, so that hubs see the
        backend go at once rather than after its grace period, when gRPC
        would cancel the streams and log their cancellation as errors."""
        for end in list(self._enders):
            end()

    @streaming
    async def Link(
        self, request_iterator: AsyncIterator[backend_pb2.LinkRequest], context: Ctx
    ) -> AsyncIterator[backend_pb2.LinkResponse]:
        requests = aiter(request_iterator)
        try:
            async with asyncio.timeout(LINK_HANDSHAKE_TIMEOUT_S):
                hello = await anext(requests)
        except (TimeoutError, StopAsyncIteration):
            raise WshError(
                Kind.INVALID_ARGUMENT,
                "LINK_HANDSHAKE",
                "A Link must start with the hub's identity.",
            ) from None
        if hello.WhichOneof("message") != "identity":
            raise WshError(
                Kind.INVALID_ARGUMENT,
                "LINK_HANDSHAKE",
                "A Link must start with the hub's identity.",
            )
        log.info("hub %r linked (peer %s)", hello.identity.hostname[:253], context.peer())

        with self._limits.hold(context.peer(), "Link"):
            async for msg in self._serve(requests):
                yield msg

    async def _serve(
        self, requests: AsyncIterator[backend_pb2.LinkRequest]
    ) -> AsyncIterator[backend_pb2.LinkResponse]:
        queue: asyncio.Queue[backend_pb2.LinkResponse | _Overflow | None] = asyncio.Queue()

        def push(msg: backend_pb2.LinkResponse | None) -> None:
            if queue.qsize() < MAX_BACKLOG:
                queue.put_nowait(msg)
            elif queue.qsize() == MAX_BACKLOG:
                queue.put_nowait(_OVERFLOW)  # once; the stream ends when it is reached

        # Transitions of one loop turn go in one message (a burst of
        # sessions settling together costs the hub one read), each session's
        # last one only; they are sent before any inventory change that
        # follows them, so that a rename cannot overtake them.
        pending: dict[str, backend_pb2.SessionTransition] = {}
        flushing: list[asyncio.Handle] = []

        def flush() -> None:
            flushing.clear()
            if pending:
                push(
                    backend_pb2.LinkResponse(
                        transitions=backend_pb2.Transitions(transitions=pending.values())
                    )
                )
                pending.clear()

        def on_event(event: SessionEvent | ActivityChange) -> None:
            if isinstance(event, ActivityChange):
                pending.pop(event.name, None)
                pending[event.name] = backend_pb2.SessionTransition(
                    name=event.name,
                    generation=event.generation,
                    quiet=event.quiet,
                    quiet_ms=event.quiet_ms,
                )
                if not flushing:
                    flushing.append(asyncio.get_running_loop().call_soon(flush))
                return
            flush()
            msg = backend_pb2.SessionEvent(previous_name=event.previous_name)
            if event.info is not None:
                msg.upsert.CopyFrom(convert.session_to_pb(event.info))
            else:
                msg.removed = event.name
                msg.expired = event.expired
            push(backend_pb2.LinkResponse(event=msg))

        ident = self._identity
        yield backend_pb2.LinkResponse(
            identity=backend_pb2.Identity(
                hostname=ident.hostname, server_id=ident.server_id, version=ident.version
            )
        )
        # Snapshot and subscription happen in the same loop step: no change
        # can fall between them.
        listed = self._sessions.matching()
        inventory = backend_pb2.Inventory(
            sessions=[convert.session_to_pb(self._sessions.info(s)) for s in listed],
            states=[
                backend_pb2.SessionTransition(
                    name=s.name,
                    generation=s.activity.generation,
                    quiet=s.activity.settled,
                    quiet_ms=s.activity.idle_ms(),
                )
                for s in listed
            ],
        )

        def end() -> None:
            queue.put_nowait(None)

        unsubscribe = self._sessions.subscribe(on_event)
        self._enders.add(end)
        reader = asyncio.get_running_loop().create_task(
            self._answer_heartbeats(requests, push), name="link-heartbeat-reader"
        )
        try:
            yield backend_pb2.LinkResponse(inventory=inventory)
            while True:
                msg = await queue.get()
                if msg is None:
                    return  # the hub closed its side
                if isinstance(msg, _Overflow):
                    raise WshError(
                        Kind.RESOURCE_EXHAUSTED,
                        "LINK_BACKLOG",
                        "The hub fell too far behind on inventory changes; reconnect.",
                    )
                yield msg
        finally:
            self._enders.discard(end)
            unsubscribe()
            for handle in flushing:
                handle.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _answer_heartbeats(
        self,
        requests: AsyncIterator[backend_pb2.LinkRequest],
        push: Callable[[backend_pb2.LinkResponse | None], None],
    ) -> None:
        seq = 0
        # Session name -> (generation, ready, foreground) last reported.
        reported: dict[str, tuple[int, bool, str]] = {}
        async for msg in requests:
            if msg.WhichOneof("message") == "heartbeat":
                seq += 1
                ack = backend_pb2.Heartbeat(
                    seq=seq,
                    ack_seq=msg.heartbeat.seq,
                    activity=self._activity_since(reported),
                )
                push(backend_pb2.LinkResponse(heartbeat=ack))
        push(None)

    def _activity_since(
        self, reported: dict[str, tuple[int, bool, str]]
    ) -> list[backend_pb2.SessionActivity]:
        """Sessions whose generation or foreground changed since the last
        heartbeat; updates ``reported``. The foreground comes from the
        session's cached inspection (``Session.foreground``): a quiet
        session is inspected again every 30 s, not on every heartbeat."""
        changed = []
        current: dict[str, tuple[int, bool, str]] = {}
        for session in self._sessions.matching():
            foreground = session.foreground()
            now = (
                session.activity.generation,
                foreground is not None and foreground.ready,
                foreground.name if foreground is not None else "",
            )
            current[session.name] = now
            if reported.get(session.name) != now:
                changed.append(
                    backend_pb2.SessionActivity(
                        name=session.name,
                        generation=now[0],
                        last_activity_ms=session.activity.idle_ms(),
                        ready=now[1],
                        foreground=now[2],
                    )
                )
        reported.clear()
        reported.update(current)
        return changed
