"""Bearer-token authentication for every RPC except health checks.

Health stays open so that load balancers and meshes can probe without the
token. Reflection obeys the same rule as the API: it describes it.

The token is checked in the interceptor, on the call's metadata, before
anything reads the request: a call without the right token is answered by a
handler that never receives, decompresses or parses its body. Reading bodies
first let 13 MB of gzip sent without a token cost 907 MB of RSS and 30 s of
CPU.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from wsh.api.limits import AUTH_WINDOW_S, AuthFailures, peer_key, shut_down_connection
from wsh.api.status import Ctx, Handler, Interceptor, abort
from wsh.errors import Kind, WshError

log = logging.getLogger("wsh.auth")

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
MIN_TOKEN_LEN = 16
# Connections of throttled peers remembered as already shut down.
MAX_SHUT_CONNECTIONS = 1024
# Connections remembered as having carried the right token.
MAX_TRUSTED_CONNECTIONS = 10_000


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


def _refusal(refuse: Callable[[Ctx], WshError]) -> Handler:
    """A handler that answers with ``refuse(context)`` without reading the request.

    It is registered as streaming in both directions whatever the method's
    real shape: grpc.aio reads (and decompresses, and parses) the request of
    a unary-request handler before calling it, but leaves a stream's
    messages unread until the handler asks. The client only sees a status.
    """

    async def call(_requests: Any, context: Ctx) -> AsyncIterator[Any]:
        await abort(context, refuse(context))
        yield  # unreachable: makes this an async generator, as the handler kind needs

    # The stubs type handler behaviours as synchronous; under grpc.aio they
    # are coroutine and async-generator functions.
    behaviour: Any = call
    return grpc.stream_stream_rpc_method_handler(behaviour)


class TokenAuth(Interceptor):
    """Requires ``authorization: Bearer <token>``, compared in constant time.

    A call with the right token always proceeds. A peer (IP address) that
    keeps failing gets RESOURCE_EXHAUSTED for its failing calls only: behind
    a proxy or sidecar every client shares one address, and someone else's
    wrong guesses must not lock out the clients that hold the token.

    The connection a throttled call came on is shut down as well, unless a
    call on it ever held the right token (a proxy multiplexes good and bad
    clients on one connection). Streams opened and reset at once without a
    token (HTTP/2 rapid reset) queue calls faster than the server can refuse
    them: 10,000 in 2 s made gRPC drop a random share of other clients'
    calls (CANCELLED). Shutting the connection ends the flood there; the
    client may reconnect, and its next failing call is refused and cut again.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._failures = AuthFailures()
        self._shut: OrderedDict[str, None] = OrderedDict()
        # Connections (address and port) that carried a call with the token.
        self._trusted: OrderedDict[str, None] = OrderedDict()
        # Address -> when a shutdown was last logged: one line per address
        # and window, however often it reconnects.
        self._logged: OrderedDict[str, float] = OrderedDict()
        # Not awaited by the refused call: a reset stream's call is cancelled
        # at once, which would cancel the shutdown with it.
        self._shutter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsh-auth-shut")
        self._missing = _refusal(lambda ctx: self._failed(ctx, _MISSING))
        self._wrong = _refusal(lambda ctx: self._failed(ctx, _WRONG))

    def trust(self, context: Ctx) -> None:
        """Remember that ``context``'s connection carried the right token.

        Called by ``RequestGuard`` for every call that reaches its handler,
        which behind this interceptor means every authenticated call.
        """
        peer = context.peer()
        self._trusted[peer] = None
        self._trusted.move_to_end(peer)
        while len(self._trusted) > MAX_TRUSTED_CONNECTIONS:
            self._trusted.popitem(last=False)

    def close(self) -> None:
        self._shutter.shutdown(wait=False, cancel_futures=True)

    def _failed(self, context: Ctx, err: WshError) -> WshError:
        peer = context.peer()
        try:
            self._failures.check(peer)
        except WshError as limited:
            if peer not in self._trusted:
                self._shut_down(peer)
            return limited
        self._failures.failed(peer)
        return err

    def _shut_down(self, peer: str) -> None:
        """Shut the connection ``peer`` (address and port) down, once."""
        if peer in self._shut:
            return
        self._shut[peer] = None
        while len(self._shut) > MAX_SHUT_CONNECTIONS:
            self._shut.popitem(last=False)
        address, now = peer_key(peer), time.monotonic()
        announce = now - self._logged.get(address, -AUTH_WINDOW_S) >= AUTH_WINDOW_S
        if announce:
            self._logged[address] = now
            self._logged.move_to_end(address)
            while len(self._logged) > MAX_SHUT_CONNECTIONS:
                self._logged.popitem(last=False)
        self._shutter.submit(_shut_down_and_log, peer, announce)

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
            return self._missing
        if not hmac.compare_digest(presented.encode(), self._token):
            return self._wrong
        return handler


def _shut_down_and_log(peer: str, announce: bool) -> None:
    if shut_down_connection(peer) and announce:
        log.info(
            "shutting down connections from %s: too many failed authentications "
            "(logged once per %.0f s)",
            peer_key(peer),
            AUTH_WINDOW_S,
        )


_MISSING = WshError(
    Kind.UNAUTHENTICATED,
    "UNAUTHENTICATED",
    "This server requires a token: send 'authorization: Bearer <token>' "
    "(wsh --token or WSH_TOKEN).",
)
_WRONG = WshError(Kind.PERMISSION_DENIED, "PERMISSION_DENIED", "The token is not valid.")
