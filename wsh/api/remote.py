"""Calls to a backend's HubService on behalf of a client, and checks on the answers.

Every forwarded request names the backend itself as its ``server``, so a
backend answers with its own local sessions only: a backend that is itself a
hub never passes the call on, and two servers registered with each other
never loop.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from wsh.api.status import DETAILS_KEY, RemoteStatus
from wsh.errors import Kind, WshError
from wsh.federation.auth import redact
from wsh.federation.link import BackendLink
from wsh.text import printable

# Opens a client span for a forwarded call of a method and gives the trace
# headers that carry it (wsh.api.tracing.Tracing.client_span).
ClientSpan = Callable[[str], AbstractContextManager[tuple[tuple[str, str], ...]]]

# Statuses that are the client's own doing (its deadline, its cancel): passed on.
_CALLER_CODES = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
# A backend's verdict on the request itself (SESSION_NOT_FOUND, IDLE_TIMEOUT,
# ...) is passed on with these codes only. Anything else, INTERNAL and
# UNKNOWN included, is the backend failing: SERVER_UNAVAILABLE to the client.
_VERDICT_KINDS = {
    grpc.StatusCode[kind.value]: kind
    for kind in (
        Kind.INVALID_ARGUMENT,
        Kind.NOT_FOUND,
        Kind.ALREADY_EXISTS,
        Kind.FAILED_PRECONDITION,
        Kind.RESOURCE_EXHAUSTED,
        Kind.DEADLINE_EXCEEDED,
    )
}
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_DETAILS_LEN = 1024
# Asking a backend again after a call failed on the way (a proxy reset):
# quick at first, since such a reset is over at once, and capped so that a
# backend failing every call costs little.
RETRY_INITIAL_S = 0.05
RETRY_CAP_S = 1.0
_MAX_ERROR_METADATA = 16
# Headers of the caller's that go on with a forwarded call, as they came.
PASSED_ON = ("x-request-id",)
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def _verdict(
    code: grpc.StatusCode, details: str, trailing: Any, token: str | None
) -> WshError | None:
    """The backend's ErrorInfo verdict, rebuilt from checked parts; None if it
    sent none, or one that is not a plausible wsh error."""
    kind = _VERDICT_KINDS.get(code)
    raw = [value for key, value in trailing if key == DETAILS_KEY and isinstance(value, bytes)]
    if kind is None or len(raw) != 1:
        return None
    try:
        status = status_pb2.Status.FromString(raw[0])
    except DecodeError:
        return None
    if status.code != code.value[0]:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if not detail.Unpack(info):
            continue
        reason = redact(info.reason, [token])
        if not _REASON.fullmatch(reason) or len(info.metadata) > _MAX_ERROR_METADATA:
            return None
        metadata = {
            printable(redact(key, [token]), 64): printable(redact(value, [token]))
            for key, value in info.metadata.items()
        }
        return WshError(kind, reason, details, metadata)
    return None


def backend_error(link: BackendLink, err: grpc.aio.AioRpcError) -> Exception:
    """The error to give the client for a failed call to a backend.

    Nothing of the backend's reaches the client unchecked: its message is
    escaped and capped, its ErrorInfo rebuilt from a checked reason and
    metadata, and a status no client's request could cause becomes
    SERVER_UNAVAILABLE.
    """
    token = link.backend.token
    code = err.code()
    details = printable(redact(err.details() or "", [token]), MAX_DETAILS_LEN)
    verdict = _verdict(code, details, err.trailing_metadata() or (), token)
    if verdict is not None:
        return verdict
    if code in _CALLER_CODES:
        return RemoteStatus(code, details, ())
    hostname = link.backend.hostname
    return WshError(
        Kind.UNAVAILABLE,
        "SERVER_UNAVAILABLE",
        f"Server {hostname!r} failed the call: {code.name}: {details}",
        {"server": hostname},
    )


def passed_on(context: grpc.aio.ServicerContext[Any, Any], traced: bool) -> tuple[Any, ...]:
    """The caller's headers a forwarded call carries on to the backend, the
    first of each: ``x-request-id`` unchanged, and the W3C trace headers
    unless this hub's tracing makes its own (``traced``: a child span of the
    caller's)."""
    names = PASSED_ON if traced else PASSED_ON + TRACE_HEADERS
    seen: dict[str, Any] = {}
    for key, value in context.invocation_metadata() or ():
        if key in names and key not in seen:
            seen[key] = value
    return tuple(seen.items())


def retry_delay(failures: int) -> float:
    """Jittered exponential backoff before the ``failures``-th retry."""
    backoff: float = min(RETRY_CAP_S, RETRY_INITIAL_S * 2.0 ** (failures - 1))
    return backoff * random.uniform(0.5, 1.0)


async def call(
    link: BackendLink,
    method: str,
    request: Any,
    context: grpc.aio.ServicerContext[Any, Any],
    span: ClientSpan | None = None,
) -> Any:
    """Forward one unary call, with the caller's deadline; cancellation follows
    it. With ``span`` (tracing), in a client span the backend's continues."""
    request.server = link.backend.hostname
    if span is None:
        return await _call(link, method, request, context, passed_on(context, False))
    with span(method) as trace_headers:
        return await _call(link, method, request, context, passed_on(context, True) + trace_headers)


async def _call(
    link: BackendLink,
    method: str,
    request: Any,
    context: grpc.aio.ServicerContext[Any, Any],
    headers: tuple[Any, ...],
) -> Any:
    try:
        return await getattr(link.hub, method)(
            request, timeout=context.time_remaining(), metadata=link.metadata + headers
        )
    except grpc.aio.AioRpcError as err:
        raise backend_error(link, err) from None
