"""Attach: one session's screen then its raw output, and input back, on one stream.

The local path serves a session of this server from an ``OutputTap``
(``sessions/attach.py``); the relay passes a backend's Attach stream through,
bytes as they are, checking every response (``sanitize.clean_attach_response``).
Each stream has one task of its own, reading the client's requests, owned
and cancelled by the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc

from wsh.api import remote
from wsh.api.routing import check_format, check_input_size
from wsh.api.status import Ctx
from wsh.errors import Kind, WshError, invalid
from wsh.federation import sanitize
from wsh.federation.link import BackendLink
from wsh.sessions.attach import Exited, OutputTap, Resync
from wsh.sessions.manager import SessionManager
from wsh.sessions.session import Session
from wsh.v1 import hub_pb2, types_pb2

Requests = AsyncIterator[hub_pb2.AttachRequest]
# The protobuf screen of a session at a generation (``ScreenRenderer.screen``).
Render = Callable[[Session, bool, int], types_pb2.Screen]


async def first_request(requests: Requests) -> hub_pb2.AttachStart:
    """The stream's ``start``, checked."""
    try:
        first = await anext(requests)
    except StopAsyncIteration:
        first = hub_pb2.AttachRequest()
    if first.WhichOneof("request") != "start":
        raise invalid(
            "ATTACH_NOT_STARTED",
            "The first request of an Attach stream must be `start`, naming the session.",
        )
    start = first.start
    check_format(start)
    if start.mode not in hub_pb2.AttachMode.values():
        raise invalid(
            "INVALID_MODE",
            f"Unknown attach mode {start.mode}; use ATTACH_MODE_READ_WRITE or "
            "ATTACH_MODE_READ_ONLY.",
            mode=str(start.mode),
        )
    return start


def read_only(start: hub_pb2.AttachStart) -> bool:
    return start.mode == hub_pb2.ATTACH_MODE_READ_ONLY


def check_request(request: hub_pb2.AttachRequest, read_only: bool) -> str:
    """The kind of a request after the first, refused if it cannot be taken."""
    kind = request.WhichOneof("request")
    if kind == "start":
        raise invalid("ATTACH_ALREADY_STARTED", "Only the first request of an Attach is `start`.")
    if kind is None:
        raise invalid("ATTACH_EMPTY_REQUEST", "An Attach request must set one of its fields.")
    if kind == "input":
        if read_only:
            raise WshError(
                Kind.PERMISSION_DENIED,
                "ATTACH_READ_ONLY",
                "This Attach is read-only; attach read-write to send input.",
            )
        check_input_size(len(request.input))
    return kind


async def _settled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and let it end, without taking its outcome (or ours)."""
    task.cancel()
    await asyncio.wait([task])


# -- local --------------------------------------------------------------------


async def local(
    sessions: SessionManager,
    session: Session,
    start: hub_pb2.AttachStart,
    requests: Requests,
    render: Render,
    hostname: str,
) -> AsyncIterator[hub_pb2.AttachResponse]:
    """Serve an Attach of ``session``, a session of this server."""
    watching = read_only(start)
    styled = start.format == types_pb2.SCREEN_FORMAT_STYLED
    tap = sessions.attach(session)  # first: past the limit, nothing is changed

    def snapshot() -> hub_pb2.AttachResponse:
        # One step: the repaint, the tap's restart and the screen are the
        # same point of the output.
        repaint = session.snapshot(tap)
        generation = session.activity.generation
        return hub_pb2.AttachResponse(
            snapshot=hub_pb2.AttachSnapshot(
                repaint=repaint,
                screen=render(session, styled, generation),
                generation=generation,
                resyncs=tap.resyncs,
                server=hostname,
            )
        )

    try:
        if not watching and start.HasField("size") and session.process.running:
            sessions.resize(session.name, start.size.rows, start.size.cols)
        first = snapshot()
    except BaseException:
        tap.detach()
        raise
    reader = asyncio.create_task(
        _take_requests(requests, sessions, session, tap, watching),
        name=f"attach-requests-{session.name}",
    )
    try:
        yield first
        while True:
            item = await tap.get()
            if item is None:
                return
            if isinstance(item, Resync):
                yield snapshot()
            elif isinstance(item, Exited):
                yield hub_pb2.AttachResponse(end=hub_pb2.AttachEnd(exit_code=item.code))
                return
            else:
                yield hub_pb2.AttachResponse(output=item)
    finally:
        await _settled(reader)
        tap.detach()


async def _take_requests(
    requests: Requests,
    sessions: SessionManager,
    session: Session,
    tap: OutputTap,
    watching: bool,
) -> None:
    """Apply the client's requests; a refusal ends the stream with its error."""
    try:
        async for request in requests:
            kind = check_request(request, watching)
            if kind == "detach":
                tap.detach()
                return
            if not session.process.running:
                continue  # exited: the stream ends with AttachEnd; input has nowhere to go
            if kind == "input":
                session.send(request.input)
            elif not watching:
                sessions.resize(session.name, request.resize.rows, request.resize.cols)
    except WshError as err:
        tap.fail(err)
    except grpc.aio.AbortError:
        # A request that did not parse: the guard (api/status.py) has sent
        # the status already; the stream just ends.
        tap.detach()
    # A client that closes its side only stops sending; output goes on.


# -- relay --------------------------------------------------------------------


class Relay:
    """An Attach passed through to a backend; ``interrupt`` ends it (shutdown)."""

    def __init__(self, link: BackendLink) -> None:
        self._link = link
        self._call: grpc.aio.StreamStreamCall[hub_pb2.AttachRequest, hub_pb2.AttachResponse] | None
        self._call = None
        self._error: WshError | None = None
        self._aborted = False  # the call's status was sent already

    def interrupt(self, error: WshError) -> None:
        self._error = self._error or error
        if self._call is not None:
            self._call.cancel()

    async def run(
        self, start: hub_pb2.AttachStart, requests: Requests, context: Ctx
    ) -> AsyncIterator[hub_pb2.AttachResponse]:
        link = self._link
        hostname = link.backend.hostname
        start.server = hostname
        # The caller's deadline goes with the call; its cancellation cancels
        # this generator, whose ``finally`` cancels the call.
        call = self._call = link.hub.Attach(
            None, timeout=context.time_remaining(), metadata=link.metadata
        )
        pump = asyncio.create_task(
            self._pump(hub_pb2.AttachRequest(start=start), requests, call, read_only(start)),
            name=f"attach-relay-{hostname}-{start.name}",
        )
        resyncs: int | None = None
        try:
            try:
                async for response in call:
                    checked = sanitize.clean_attach_response(response, hostname, resyncs)
                    if checked.HasField("snapshot"):
                        resyncs = checked.snapshot.resyncs
                    yield checked
            except (grpc.aio.AioRpcError, asyncio.CancelledError) as err:
                # An interrupt cancels the call: its own error is the one to tell.
                if self._aborted:
                    return
                if self._error is not None:
                    raise self._error from None
                if isinstance(err, asyncio.CancelledError):
                    raise
                raise remote.backend_error(link, err) from None
            if self._error is not None:
                raise self._error
        finally:
            await _settled(pump)
            call.cancel()

    async def _pump(
        self,
        first: hub_pb2.AttachRequest,
        requests: Requests,
        call: grpc.aio.StreamStreamCall[hub_pb2.AttachRequest, hub_pb2.AttachResponse],
        watching: bool,
    ) -> None:
        """The client's requests to the backend, checked here first."""
        try:
            await call.write(first)
            async for request in requests:
                check_request(request, watching)
                await call.write(request)
            await call.done_writing()
        except WshError as err:
            self.interrupt(err)
        except grpc.aio.AbortError:
            # A request that did not parse: its status was sent (api/status.py).
            self._aborted = True
            call.cancel()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended: its reader tells why
