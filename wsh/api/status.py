"""Domain errors to gRPC statuses carrying a ``google.rpc.ErrorInfo`` detail."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, TypeVar

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
# The one name for a servicer's context, in every module of the API.
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


# The stubs make these generic; at run time they are plain classes.
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Interceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    Interceptor = grpc.aio.ServerInterceptor


class _Malformed:
    """Stands in for a request body that did not parse."""


MALFORMED = _Malformed()


def malformed_request(method: str) -> WshError:
    return WshError(
        Kind.INVALID_ARGUMENT,
        "MALFORMED_REQUEST",
        f"The request body is not a valid message for {shorten(method)}.",
    )


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # any parser failure means the same: a bad body
            return MALFORMED

    return parse


def rewrap(
    handler: Handler, unary_out: Callable[[Any], Any], stream_out: Callable[[Any], Any]
) -> Handler:
    """``handler`` with its behaviour wrapped by ``unary_out`` where it answers
    once, ``stream_out`` where it streams (interceptors that only look at the
    call, not at its messages)."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary_out(handler.unary_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_out(handler.unary_stream), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary_out(handler.stream_unary), **kwargs)
    return grpc.stream_stream_rpc_method_handler(stream_out(handler.stream_stream), **kwargs)


def _guard_bodies(method: str, handler: Handler, on_call: Callable[[Ctx], None] | None) -> Handler:
    """``handler`` answering INVALID_ARGUMENT to a body that does not parse.

    Left alone, grpc.aio answers UNKNOWN quoting the parser's exception and
    logs a traceback per call (2,000 bad calls wrote 1.29 MB of log).
    """
    kwargs = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    refusal = malformed_request(method)

    # The stubs type handler behaviours as synchronous; under grpc.aio they
    # are coroutine and async-generator functions.
    def unary_in(inner: Any) -> Any:
        async def call(request: Any, context: Ctx) -> Any:
            if on_call is not None:
                on_call(context)
            if request is MALFORMED:
                await abort(context, refusal)
            return await inner(request, context)

        return call

    def unary_in_stream_out(inner: Any) -> Any:
        async def call(request: Any, context: Ctx) -> AsyncIterator[Any]:
            if on_call is not None:
                on_call(context)
            if request is MALFORMED:
                await abort(context, refusal)
            async for item in inner(request, context):
                yield item

        return call

    def checked(requests: AsyncIterator[Any], context: Ctx) -> AsyncIterator[Any]:
        async def each() -> AsyncIterator[Any]:
            async for request in requests:
                if request is MALFORMED:
                    # Sending the status ends the call, whichever task reads.
                    await abort(context, refusal)
                yield request

        return each()

    def stream_in(inner: Any) -> Any:
        async def call(requests: AsyncIterator[Any], context: Ctx) -> Any:
            if on_call is not None:
                on_call(context)
            return await inner(checked(requests, context), context)

        return call

    def stream_in_stream_out(inner: Any) -> Any:
        async def call(requests: AsyncIterator[Any], context: Ctx) -> AsyncIterator[Any]:
            if on_call is not None:
                on_call(context)
            async for item in inner(checked(requests, context), context):
                yield item

        return call

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary_in(handler.unary_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            unary_in_stream_out(handler.unary_stream), **kwargs
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(stream_in(handler.stream_unary), **kwargs)
    return grpc.stream_stream_rpc_method_handler(
        stream_in_stream_out(handler.stream_stream), **kwargs
    )


class WrappingInterceptor(Interceptor):
    """An interceptor that wraps the handler of each method it ``covers``.

    Per method, the handler as registered and its wrapped version are kept:
    a fixed, small set, wrapped once rather than on every call.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def covers(self, method: str) -> bool:
        return True

    def wrap(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None or not self.covers(details.method):
            return handler
        known = self._wrapped.get(details.method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self.wrap(details.method, handler)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped


class RequestGuard(WrappingInterceptor):
    """Turns request bodies that do not parse into INVALID_ARGUMENT, for every method."""

    def __init__(self, on_call: Callable[[Ctx], None] | None = None) -> None:
        """``on_call(context)`` runs first in every call that reaches its handler."""
        super().__init__()
        self._on_call = on_call

    def wrap(self, method: str, handler: Handler) -> Handler:
        return _guard_bodies(method, handler, self._on_call)
