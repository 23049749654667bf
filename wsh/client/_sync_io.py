"""The few things the blocking client does differently from the asyncio one.

The blocking twin of :mod:`wsh.client._aio_io`, with the same names;
:mod:`wsh.client._sync` (generated) imports them.
"""

from __future__ import annotations

import queue
from typing import TypeAlias, cast

import grpc
from grpc_status import rpc_status

from wsh.channels import PrefixedChannel
from wsh.client._address import CHANNEL_OPTIONS
from wsh.client._errors import WshRpcError, error_from_status
from wsh.v1 import hub_pb2, hub_pb2_grpc

Channel: TypeAlias = grpc.Channel
Stub: TypeAlias = hub_pb2_grpc.HubServiceStub
UnaryUnary = grpc.UnaryUnaryMultiCallable
RaceCall: TypeAlias = "grpc.CallIterator[hub_pb2.RaceIdleResponse]"
WatchCall: TypeAlias = "grpc.CallIterator[hub_pb2.WatchSessionsResponse]"
RpcError = grpc.RpcError


def open_channel(target: str, credentials: grpc.ChannelCredentials | None) -> Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


def open_stub(channel: Channel, prefix: str) -> Stub:
    # The stub asks its channel only for what PrefixedChannel has.
    return hub_pb2_grpc.HubServiceStub(cast(Channel, PrefixedChannel(channel, prefix)))


def close_channel(channel: Channel) -> None:
    channel.close()


def cancel_call(call: RaceCall | WatchCall) -> None:
    call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs


class AttachCall:
    """An ``Attach`` call: its requests go through a queue that gRPC's own
    thread drains, so ``write`` never blocks; ``start`` goes first."""

    def __init__(
        self,
        stub: Stub,
        start: hub_pb2.AttachRequest,
        timeout: float | None,
        metadata: tuple[tuple[str, str], ...] | None,
    ) -> None:
        self._requests: queue.SimpleQueue[hub_pb2.AttachRequest | None] = queue.SimpleQueue()
        self._requests.put(start)
        self._call = stub.Attach(iter(self._requests.get, None), timeout=timeout, metadata=metadata)
        self._responses = iter(self._call)

    def write(self, request: hub_pb2.AttachRequest) -> None:
        self._requests.put(request)

    def read(self) -> hub_pb2.AttachResponse | None:
        """The next response; None at the end of the stream."""
        return next(self._responses, None)

    def cancel(self) -> None:
        # The end of the requests lets gRPC's thread that reads them finish.
        self._requests.put(None)
        self._call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs


def rpc_error(exc: RpcError) -> WshRpcError:
    status = None
    if isinstance(exc, grpc.Call):
        try:
            status = rpc_status.from_call(exc)
        except ValueError:
            # The peer's Status proto disagrees with the call's own status; the
            # call's code and message are what gRPC acted on, so keep those.
            status = None
    return error_from_status(exc.code(), exc.details() or "", status)
