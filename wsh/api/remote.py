"""Calls to a backend's HubService on behalf of a client, and checks on the answers.

A backend answers with its own local sessions only (the hub always sends an
empty ``server``), so two servers registered with each other never loop.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc

from wsh.api import convert
from wsh.api.status import DETAILS_KEY, RemoteStatus
from wsh.defaults import MAX_DIMENSION, SCROLLBACK_PAGE_MAX
from wsh.errors import Kind, WshError
from wsh.federation import sanitize
from wsh.federation.auth import redact
from wsh.federation.link import BackendLink
from wsh.v1 import hub_pb2, types_pb2

Resp = TypeVar("Resp")

# Statuses that are the client's own doing (its deadline, its cancel): passed on.
_CALLER_CODES = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def backend_error(link: BackendLink, err: grpc.aio.AioRpcError) -> Exception:
    """The error to give the client for a failed call to a backend."""
    details = redact(err.details() or "", [link.backend.token])
    trailing: Any = err.trailing_metadata() or ()
    rich = tuple(
        (key, value) for key, value in trailing if key == DETAILS_KEY and isinstance(value, bytes)
    )
    if rich or err.code() in _CALLER_CODES:
        # The backend's own verdict (SESSION_NOT_FOUND, IDLE_TIMEOUT, ...).
        return RemoteStatus(err.code(), details, rich)
    hostname = link.backend.hostname
    return WshError(
        Kind.UNAVAILABLE,
        "SERVER_UNAVAILABLE",
        f"Server {hostname!r} failed the call: {err.code().name}: {details}",
        {"server": hostname},
    )


async def call(
    link: BackendLink, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]
) -> Any:
    """Forward one unary call, with the caller's deadline; cancellation follows it."""
    request.server = ""
    try:
        return await getattr(link.hub, method)(
            request, timeout=context.time_remaining(), metadata=link.metadata
        )
    except grpc.aio.AioRpcError as err:
        raise backend_error(link, err) from None


def clean_session(pb: types_pb2.Session, hostname: str) -> types_pb2.Session:
    return convert.session_to_pb(sanitize.check_session(convert.session_from_pb(pb), hostname))


def _check_lines(lines: Any, limit: int, width: int, what: str, hostname: str) -> None:
    sanitize.check_count(len(lines), limit, what=what, backend=hostname)
    # A line holds at most `width` cells; combining characters and wide
    # glyphs stay well within four code points a cell.
    for line in lines:
        if len(line) > 4 * width:
            raise sanitize.BackendGarbage(
                f"Backend {hostname!r} sent a line of {len(line)} characters for {width} columns."
            )


def clean_screen(screen: types_pb2.Screen, hostname: str) -> types_pb2.Screen:
    for value, what in ((screen.rows, "rows"), (screen.cols, "columns")):
        if not 1 <= value <= MAX_DIMENSION:
            raise sanitize.BackendGarbage(
                f"Backend {hostname!r} sent a screen with {value} {what}."
            )
    _check_lines(screen.lines, screen.rows, screen.cols, "screen lines", hostname)
    sanitize.check_count(
        len(screen.styled_lines), screen.rows, what="styled lines", backend=hostname
    )
    for line in screen.styled_lines:
        _check_lines(
            [span.text for span in line.spans], screen.cols, screen.cols, "spans", hostname
        )
    return screen


def clean_idle(idle: types_pb2.Idle, hostname: str) -> types_pb2.Idle:
    sanitize.check_session(
        convert.session_from_pb(types_pb2.Session(name=idle.session, rows=1, cols=1)), hostname
    )
    clean_screen(idle.screen, hostname)
    idle.server = hostname
    return idle


def clean_scrollback(page: hub_pb2.GetScrollbackResponse, hostname: str) -> None:
    _check_lines(page.lines, SCROLLBACK_PAGE_MAX, MAX_DIMENSION, "scrollback lines", hostname)
    sanitize.check_count(
        len(page.styled_lines), SCROLLBACK_PAGE_MAX, what="styled lines", backend=hostname
    )
    for line in page.styled_lines:
        _check_lines(
            [span.text for span in line.spans], MAX_DIMENSION, MAX_DIMENSION, "spans", hostname
        )
