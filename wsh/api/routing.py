"""How a HubService call is routed, and what a backend's answer becomes.

The servicer's methods hold only their local path. ``routed`` wraps each
one with everything else, said once: the request's checks, the choice of
server (by ``server``, or by the session's name), the forwarded call, and
the checks on the backend's answer before the client sees it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from wsh import convert, defaults
from wsh.api import remote
from wsh.api.status import Ctx, unary
from wsh.errors import Kind, WshError, invalid, shorten
from wsh.federation import sanitize, writes
from wsh.federation.registry import Backend, Registry, draining_error
from wsh.v1 import hub_pb2, types_pb2


class Router(Protocol):
    """What routing needs from the servicer."""

    registry: Registry

    def route(self, server: str) -> Backend | None: ...

    def target(self, server: str, name: str) -> Backend | None: ...

    async def forward(self, backend: Backend, method: str, request: Any, context: Ctx) -> Any: ...


R = TypeVar("R", bound=Router)
Local = Callable[[R, Any, Ctx], Awaitable[Any]]
# The client's answer, made from the backend's: (router, backend, request, answer).
Answer = Callable[[Router, Backend, Any, Any], Awaitable[Any]]
Forward = Callable[[Router, Backend, Any, Ctx], Awaitable[Any]]
Check = Callable[[Any], None]


def routed(
    answer: Answer,
    *,
    check: Check | None = None,
    by_name: bool = True,
    forward: Forward | None = None,
) -> Callable[[Local[R]], Callable[[R, Any, Ctx], Awaitable[Any]]]:
    """Route a unary call: ``check`` the request, pick its server (by the
    session's name unless ``by_name`` is false), then run the decorated local
    path or forward the call (``forward``, else the same RPC) and make the
    client's answer with ``answer``."""

    def wrap(local: Local[R]) -> Callable[[R, Any, Ctx], Awaitable[Any]]:
        method = local.__name__

        @functools.wraps(local)
        async def call(self: R, request: Any, context: Ctx) -> Any:
            if check is not None:
                check(request)
            if by_name:
                backend = self.target(request.server, request.name)
            else:
                backend = self.route(request.server)
            if backend is None:
                return await local(self, request, context)
            if forward is not None:
                response = await forward(self, backend, request, context)
            else:
                response = await self.forward(backend, method, request, context)
            return await answer(self, backend, request, response)

        return unary(call)

    return wrap


# -- checks ---------------------------------------------------------------------


def check_format(request: Any) -> None:
    """Unknown enum values are refused, not read as the default."""
    if request.format not in types_pb2.ScreenFormat.values():
        raise invalid(
            "INVALID_FORMAT",
            f"Unknown screen format {request.format}; use SCREEN_FORMAT_PLAIN or "
            "SCREEN_FORMAT_STYLED.",
            format=str(request.format),
        )


def check_mode(request: Any) -> None:
    if request.mode not in hub_pb2.IdleMode.values():
        raise invalid(
            "INVALID_MODE",
            f"Unknown idle mode {request.mode}; use IDLE_MODE_QUIET or IDLE_MODE_READY.",
            mode=str(request.mode),
        )


def check_wait(request: Any) -> None:
    """The checks of AwaitIdle and RaceIdle: screen format and idle mode."""
    check_format(request)
    check_mode(request)


def input_bytes(request: hub_pb2.SendInputRequest) -> bytes:
    """The bytes a SendInput writes: ``data``, or ``text`` as UTF-8."""
    if request.WhichOneof("input") == "text":
        return request.text.encode()
    return request.data


def check_input(request: hub_pb2.SendInputRequest) -> None:
    check_input_size(
        len(request.data) if request.WhichOneof("input") != "text" else len(request.text.encode())
    )


def check_input_size(size: int) -> None:
    """Input of ``size`` bytes, from SendInput or an Attach, fits the limit."""
    if size > defaults.MAX_INPUT_BYTES:
        raise invalid(
            "INPUT_TOO_LARGE",
            f"Input of {size} bytes exceeds the limit of "
            f"{defaults.MAX_INPUT_BYTES} bytes; send it in parts.",
            limit=str(defaults.MAX_INPUT_BYTES),
        )


# -- answers ----------------------------------------------------------------------


async def session_answer(router: Router, backend: Backend, request: Any, response: Any) -> Any:
    """An answer holding the session asked about, checked."""
    session = sanitize.clean_session(response.session, backend.hostname, request.name)
    return type(response)(session=session)


def changed_session(
    name: Callable[[Any], str], previous_name: Callable[[Any], str] = lambda _request: ""
) -> Answer:
    """An answer holding a session the call changed (``name(request)``, once
    ``previous_name(request)``), returned once the hub's inventory shows it."""

    async def answer(router: Router, backend: Backend, request: Any, response: Any) -> Any:
        session = sanitize.clean_session(response.session, backend.hostname, name(request))
        info = convert.session_from_pb(session)
        await writes.observe(router.registry, backend, session.name, info, previous_name(request))
        return type(response)(session=session)

    return answer


async def killed(router: Router, backend: Backend, request: Any, response: Any) -> Any:
    await writes.observe(router.registry, backend, request.name, None)
    return hub_pb2.KillSessionResponse(server=backend.hostname)


async def input_answer(router: Router, backend: Backend, request: Any, response: Any) -> Any:
    return hub_pb2.SendInputResponse(generation=response.generation, server=backend.hostname)


async def screen_answer(router: Router, backend: Backend, request: Any, response: Any) -> Any:
    screen = sanitize.clean_screen(response.screen, backend.hostname)
    return hub_pb2.GetScreenResponse(screen=screen, server=backend.hostname)


async def scrollback_answer(router: Router, backend: Backend, request: Any, response: Any) -> Any:
    sanitize.clean_scrollback(response, backend.hostname)
    response.server = backend.hostname
    return response


async def idle_answer(router: Router, backend: Backend, request: Any, response: Any) -> Any:
    return hub_pb2.AwaitIdleResponse(
        idle=sanitize.clean_idle(response.idle, backend.hostname, request.name)
    )


# -- waits --------------------------------------------------------------------------


def wait_bounds(timeout_ms: int, max_wait_ms: int) -> tuple[int, float]:
    """Quiet time in ms and overall bound in seconds, with the contract's caps."""
    timeout = min(timeout_ms, defaults.MAX_WAIT_CAP_MS)
    max_wait = min(max_wait_ms or defaults.MAX_WAIT_DEFAULT_MS, defaults.MAX_WAIT_CAP_MS)
    return timeout, max_wait / 1000


def idle_timeout_error(max_wait_s: float, session: str = "") -> WshError:
    """Nothing settled in time: ``session`` (AwaitIdle), or nothing in scope (RaceIdle)."""
    max_wait_ms = str(int(max_wait_s * 1000))
    what = f"Session {shorten(session)!r}" if session else "No session in scope"
    return WshError(
        Kind.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
        f"{what} did not become idle within max_wait_ms={max_wait_ms}.",
        {"max_wait_ms": max_wait_ms, **({"session": shorten(session)} if session else {})},
    )


async def forward_create(
    router: Router, backend: Backend, request: hub_pb2.CreateSessionRequest, context: Ctx
) -> Any:
    """Forward a CreateSession, unless the backend said it is draining."""
    if backend.draining:
        raise draining_error(backend.hostname)
    return await router.forward(backend, "CreateSession", request, context)


async def forward_wait(
    router: Router, backend: Backend, request: hub_pb2.AwaitIdleRequest, context: Ctx
) -> Any:
    """Forward an AwaitIdle, asking again when the call fails on the way.

    A proxy between hub and backend may reset a call that carries no data
    for a while (Envoy's stream_idle_timeout); while the Link says the
    backend is healthy, the wait goes on with what is left of max_wait_ms,
    as if it had not been cut.
    """
    timeout_ms, max_wait_s = wait_bounds(request.timeout_ms, request.max_wait_ms)
    started = time.monotonic()
    failures = 0
    while True:
        try:
            return await router.forward(backend, "AwaitIdle", request, context)
        except WshError as err:
            if err.reason != "SERVER_UNAVAILABLE" or not backend.healthy:
                raise
            failures += 1
        await asyncio.sleep(remote.retry_delay(failures))
        elapsed = time.monotonic() - started
        if elapsed >= max_wait_s:
            raise idle_timeout_error(max_wait_s, request.name)
        request.max_wait_ms = max(1, int((max_wait_s - elapsed) * 1000))
        # The silence already observed counts towards a fresh window.
        request.fresh = request.fresh and elapsed < timeout_ms / 1000
