"""The few things the asyncio client does differently from the blocking one.

:mod:`wsh.client._async` imports these; the generated :mod:`wsh.client._sync`
imports the same names from :mod:`wsh.client._sync_io`, the blocking twin of
this module. Everything else about the two clients is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, TypeAlias, cast

import grpc
import grpc.aio
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from wsh.channels import PrefixedChannel
from wsh.client._address import CHANNEL_OPTIONS
from wsh.client._errors import WshRpcError, error_from_status
from wsh.v1 import hub_pb2, hub_pb2_grpc

if TYPE_CHECKING:
    from wsh.v1.hub_pb2_grpc import HubServiceAsyncStub

_DETAILS_KEY = "grpc-status-details-bin"

Channel: TypeAlias = grpc.aio.Channel
Stub: TypeAlias = "HubServiceAsyncStub"
UnaryUnary = grpc.aio.UnaryUnaryMultiCallable
RaceCall: TypeAlias = "grpc.aio.UnaryStreamCall[hub_pb2.RaceIdleRequest, hub_pb2.RaceIdleResponse]"
WatchCall: TypeAlias = (
    "grpc.aio.UnaryStreamCall[hub_pb2.WatchSessionsRequest, hub_pb2.WatchSessionsResponse]"
)
RpcError = grpc.aio.AioRpcError


def open_channel(target: str, credentials: grpc.ChannelCredentials | None) -> Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


def open_stub(channel: Channel, prefix: str) -> Stub:
    # The stub asks its channel only for what PrefixedChannel has.
    return hub_pb2_grpc.HubServiceStub(cast(Channel, PrefixedChannel(channel, prefix)))


async def close_channel(channel: Channel) -> None:
    await channel.close(None)


def cancel_call(call: RaceCall | WatchCall) -> None:
    call.cancel()


class AttachCall:
    """An ``Attach`` call: ``start`` goes first, written on the first use."""

    def __init__(
        self,
        stub: Stub,
        start: hub_pb2.AttachRequest,
        timeout: float | None,
        metadata: tuple[tuple[str, str], ...] | None,
    ) -> None:
        self._call = stub.Attach(None, timeout=timeout, metadata=metadata)
        self._start: hub_pb2.AttachRequest | None = start
        # grpc.aio takes one write at a time.
        self._writing = asyncio.Lock()

    async def _started(self) -> None:
        async with self._writing:
            if self._start is not None:
                await self._call.write(self._start)
                self._start = None

    async def write(self, request: hub_pb2.AttachRequest) -> None:
        await self._started()
        async with self._writing:
            # A call that has ended refuses writes: the next read tells how it ended.
            with contextlib.suppress(asyncio.InvalidStateError):
                await self._call.write(request)

    async def read(self) -> hub_pb2.AttachResponse | None:
        """The next response; None at the end of the stream."""
        await self._started()
        response = await self._call.read()
        if response is grpc.aio.EOF:  # type: ignore[attr-defined]  # not in grpc-stubs
            return None
        return cast(hub_pb2.AttachResponse, response)

    def cancel(self) -> None:
        self._call.cancel()


def rpc_error(exc: RpcError) -> WshRpcError:
    # grpc-stubs types this as the sync client's tuple; aio returns its Metadata.
    trailers = cast(grpc.aio.Metadata, exc.trailing_metadata())
    raw = trailers.get(_DETAILS_KEY) if trailers is not None else None
    status = None
    if isinstance(raw, bytes):
        try:
            status = status_pb2.Status.FromString(raw)
        except DecodeError:
            status = None
    return error_from_status(exc.code(), exc.details() or "", status)
