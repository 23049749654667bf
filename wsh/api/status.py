"""Domain errors to gRPC statuses carrying a ``google.rpc.ErrorInfo`` detail."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from wsh.errors import Kind, WshError, shorten

DOMAIN = "wsh.v1"
DETAILS_KEY = "grpc-status-details-bin"
# An error's text travels in trailing metadata, twice (as details and in the
# Status); clients refuse metadata past 8-16 KiB, so a message quoting a huge
# input must never get there whole.
MAX_MESSAGE_LEN = 2048
MAX_METADATA_VALUE_LEN = 256

_CODES: dict[Kind, grpc.StatusCode] = {kind: grpc.StatusCode[kind.value] for kind in Kind}


def grpc_code(kind: Kind) -> grpc.StatusCode:
    return _CODES[kind]


def status_metadata(err: WshError) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata holding the rich status, as grpc-status clients read it."""
    metadata = {key: shorten(value, MAX_METADATA_VALUE_LEN) for key, value in err.metadata.items()}
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=grpc_code(err.kind).value[0], message=status_message(err), details=[detail]
    )
    return ((DETAILS_KEY, status.SerializeToString()),)


def status_message(err: WshError) -> str:
    return shorten(err.message, MAX_MESSAGE_LEN)


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: WshError) -> NoReturn:
    await context.abort(grpc_code(err.kind), status_message(err), status_metadata(err))
    raise AssertionError("unreachable: abort raises")


class RemoteStatus(Exception):
    """A backend's error status, passed on to the client unchanged."""

    def __init__(
        self, code: grpc.StatusCode, details: str, metadata: tuple[tuple[str, bytes], ...]
    ) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.metadata = metadata


async def abort_remote(context: grpc.aio.ServicerContext[Any, Any], err: RemoteStatus) -> NoReturn:
    await context.abort(err.code, err.details, err.metadata)
    raise AssertionError("unreachable: abort raises")


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")
Ctx = grpc.aio.ServicerContext[Any, Any]


def unary(
    handler: Callable[[Self, Req, Ctx], Awaitable[Resp]],
) -> Callable[[Self, Req, Ctx], Awaitable[Resp]]:
    """Turn WshError raised by a unary handler into its gRPC status."""

    @functools.wraps(handler)
    async def wrapper(self: Self, request: Req, context: Ctx) -> Resp:
        try:
            return await handler(self, request, context)
        except WshError as err:
            await abort(context, err)
        except RemoteStatus as err:
            await abort_remote(context, err)

    return wrapper


def streaming(
    handler: Callable[[Self, Req, Ctx], AsyncIterator[Resp]],
) -> Callable[[Self, Req, Ctx], AsyncIterator[Resp]]:
    """Turn WshError raised by a server-streaming handler into its gRPC status."""

    @functools.wraps(handler)
    async def wrapper(self: Self, request: Req, context: Ctx) -> AsyncIterator[Resp]:
        try:
            async for item in handler(self, request, context):
                yield item
        except WshError as err:
            await abort(context, err)
        except RemoteStatus as err:
            await abort_remote(context, err)

    return wrapper
