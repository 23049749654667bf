"""Bearer-token authentication for every RPC except health checks.

Health stays open so that load balancers and meshes can probe without the
token. Reflection obeys the same rule as the API: it describes it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from wsh.api.status import grpc_code, status_metadata
from wsh.errors import Kind, WshError

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
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


def _refusal(handler: Handler, err: WshError) -> Handler:
    """A handler of the same shape as ``handler`` that fails with ``err``."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc_code(err.kind), err.message, status_metadata(err))

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc_code(err.kind), err.message, status_metadata(err))
        yield  # pragma: no cover - makes this an async generator

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **kwargs)


class TokenAuth(_Interceptor):
    """Requires ``authorization: Bearer <token>``, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        presented = _bearer(details.invocation_metadata)
        if presented is None:
            return _refusal(
                handler,
                WshError(
                    Kind.UNAUTHENTICATED,
                    "UNAUTHENTICATED",
                    "This server requires a token: send 'authorization: Bearer <token>' "
                    "(wsh --token or WSH_TOKEN).",
                ),
            )
        if not hmac.compare_digest(presented.encode(), self._token):
            return _refusal(
                handler,
                WshError(Kind.PERMISSION_DENIED, "PERMISSION_DENIED", "The token is not valid."),
            )
        return handler
