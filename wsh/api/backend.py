"""BackendService: this server's end of a hub's Link stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from wsh.api import convert
from wsh.api.status import streaming
from wsh.errors import Kind, WshError
from wsh.identity import ServerIdentity
from wsh.sessions.manager import SessionEvent, SessionManager
from wsh.stats import StreamCounts
from wsh.v1 import backend_pb2, backend_pb2_grpc

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 5.0
# Inventory changes a slow hub may fall behind by before its Link is ended;
# it reconnects and gets a fresh inventory instead of an unbounded queue here.
MAX_BACKLOG = 4096

Ctx = grpc.aio.ServicerContext[Any, Any]


class BackendServicer(backend_pb2_grpc.BackendServiceServicer):
    """Sends identity, inventory, heartbeat acks and inventory changes to a hub."""

    def __init__(
        self, identity: ServerIdentity, sessions: SessionManager, streams: StreamCounts
    ) -> None:
        self._identity = identity
        self._sessions = sessions
        self._streams = streams

    @streaming
    async def Link(
        self, request_iterator: AsyncIterator[backend_pb2.LinkRequest], context: Ctx
    ) -> AsyncIterator[backend_pb2.LinkResponse]:
        requests = aiter(request_iterator)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
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

        queue: asyncio.Queue[backend_pb2.LinkResponse | None] = asyncio.Queue(MAX_BACKLOG)

        def on_event(event: SessionEvent) -> None:
            msg = backend_pb2.SessionEvent(previous_name=event.previous_name)
            if event.info is not None:
                msg.upsert.CopyFrom(convert.session_to_pb(event.info))
            else:
                msg.removed = event.name
            try:
                queue.put_nowait(backend_pb2.LinkResponse(event=msg))
            except asyncio.QueueFull:
                overflowed.set()

        overflowed = asyncio.Event()
        ident = self._identity
        yield backend_pb2.LinkResponse(
            identity=backend_pb2.Identity(
                hostname=ident.hostname, server_id=ident.server_id, version=ident.version
            )
        )
        # Snapshot and subscription happen in the same loop step: no change
        # can fall between them.
        inventory = backend_pb2.Inventory(
            sessions=[
                convert.session_to_pb(self._sessions.info(s)) for s in self._sessions.matching()
            ]
        )
        unsubscribe = self._sessions.subscribe(on_event)
        self._streams.links += 1
        reader = asyncio.get_running_loop().create_task(
            self._answer_heartbeats(requests, queue), name="link-heartbeat-reader"
        )
        overflow_wait = asyncio.get_running_loop().create_task(
            overflowed.wait(), name="link-overflow-watch"
        )
        try:
            yield backend_pb2.LinkResponse(inventory=inventory)
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, overflow_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    raise WshError(
                        Kind.RESOURCE_EXHAUSTED,
                        "LINK_BACKLOG",
                        "The hub fell too far behind on inventory changes; reconnect.",
                    )
                msg = getter.result()
                if msg is None:
                    return  # the hub closed its side
                yield msg
        finally:
            self._streams.links -= 1
            unsubscribe()
            for task in (reader, overflow_wait):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @staticmethod
    async def _answer_heartbeats(
        requests: AsyncIterator[backend_pb2.LinkRequest],
        queue: asyncio.Queue[backend_pb2.LinkResponse | None],
    ) -> None:
        seq = 0
        async for msg in requests:
            if msg.WhichOneof("message") == "heartbeat":
                seq += 1
                ack = backend_pb2.Heartbeat(seq=seq, ack_seq=msg.heartbeat.seq)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(backend_pb2.LinkResponse(heartbeat=ack))
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
