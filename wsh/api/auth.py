"""Bearer-token authentication for every RPC except health checks.

Health stays open so that load balancers and meshes can probe without the
token. Reflection obeys the same rule as the API: it describes it.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from wsh.api.limits import AuthFailures
from wsh.api.status import grpc_code, status_metadata
from wsh.errors import Kind, WshError

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
Ctx = grpc.aio.ServicerContext[Any, Any]
MIN_TOKEN_LEN = 16

# The stubs make these generic; at run time they are plain classes.
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    _Interceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    _Interceptor = grpc.aio.ServerInterceptor


def check_token_strength(token: str) -> None:
    if len(token) < MIN_TOKEN_LEN:
        raise WshError(
            Kind.INVALID_ARGUMENT,
            "TOKEN_TOO_SHORT",
            f"The token must have at least {MIN_TOKEN_LEN} characters.",
        )


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, credential = text.partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else ""
    return None


def _guarded(handler: Handler, admit: Callable[[Ctx, Any], WshError | None]) -> Handler:
    """``handler`` with ``admit(context, metadata)`` run first; an error it returns ends the call.

    The check runs inside the call rather than in the interceptor because
    only the call's context knows the peer, which failure throttling needs.
    """
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }

    async def refuse_if_needed(context: Ctx) -> None:
        err = admit(context, context.invocation_metadata())
        if err is not None:
            await context.abort(grpc_code(err.kind), err.message, status_metadata(err))

    # The stubs type handler behaviours as synchronous; under grpc.aio they are
    # coroutine and async-generator functions.
    def unary(inner: Any) -> Callable[[Any, Ctx], Awaitable[Any]]:
        async def call(request: Any, context: Ctx) -> Any:
            await refuse_if_needed(context)
            return await inner(request, context)

        return call

    def streaming(inner: Any) -> Callable[[Any, Ctx], AsyncIterator[Any]]:
        async def call(request: Any, context: Ctx) -> AsyncIterator[Any]:
            await refuse_if_needed(context)
            async for item in inner(request, context):
                yield item

        return call

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kwargs)


class TokenAuth(_Interceptor):
    """Requires ``authorization: Bearer <token>``, compared in constant time.

    A peer that keeps failing is refused for a while (RESOURCE_EXHAUSTED),
    which slows token guessing without affecting anyone else.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._failures = AuthFailures()

    def _admit(self, context: Ctx, metadata: Any) -> WshError | None:
        peer = context.peer()
        try:
            self._failures.check(peer)
        except WshError as err:
            return err
        presented = _bearer(metadata)
        if presented is None:
            self._failures.failed(peer)
            return WshError(
                Kind.UNAUTHENTICATED,
                "UNAUTHENTICATED",
                "This server requires a token: send 'authorization: Bearer <token>' "
                "(wsh --token or WSH_TOKEN).",
            )
        if not hmac.compare_digest(presented.encode(), self._token):
            self._failures.failed(peer)
            return WshError(Kind.PERMISSION_DENIED, "PERMISSION_DENIED", "The token is not valid.")
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        return _guarded(handler, self._admit)
