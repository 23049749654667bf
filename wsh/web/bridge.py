"""The gRPC-Web bridge of ``wsh web``: browser calls to the hub, as raw bytes.

A browser cannot speak gRPC (it has no access to HTTP/2 trailers), so the web
app speaks gRPC-Web: the same length-prefixed messages over an ordinary
HTTP POST, with the trailers sent as one last frame of the body (flag 0x80).
This module decodes the request's one message, calls the hub with grpc.aio
over a generic channel (identity serializers: the bytes are never parsed
here, the hub checks them as it checks any client's), and writes each
answer and the final status back as gRPC-Web frames.

Only ``wsh.v1.HubService`` is reachable. Which of its methods stream is read
from the generated descriptors, so a new RPC needs no change here. A method
whose requests stream (``Attach``) is called with the browser's one request,
then its request side is closed (gRPC-Web cannot stream from the browser; an
Attach client that closes its side still receives), so the app sends
keystrokes with ``SendInput``.

What the browser sends on is only its ``authorization`` header and its
deadline (``grpc-timeout``); cookies and every other header stay here.
"""

from __future__ import annotations

import base64
import hmac
import logging
import struct
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

import grpc
import grpc.aio
from aiohttp import web
from google.rpc import status_pb2

from wsh.api.status import DETAILS_KEY, status_metadata
from wsh.errors import Kind, WshError
from wsh.v1 import hub_pb2

log = logging.getLogger("wsh.web")

SERVICE = "wsh.v1.HubService"
CONTENT_TYPES = ("application/grpc-web", "application/grpc-web+proto")
# The largest message a hub accepts (wsh.defaults.MAX_MESSAGE_BYTES is the
# same 16 MiB), plus its 5-byte frame header.
MAX_REQUEST_BYTES = 16 * 1024 * 1024 + 5
_FRAME = struct.Struct(">BI")
_TRAILER_FLAG = 0x80
# grpc-timeout units (the gRPC over HTTP/2 spec) in seconds.
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


@dataclass(frozen=True, slots=True)
class MethodKind:
    client_streaming: bool
    server_streaming: bool


def hub_methods() -> dict[str, MethodKind]:
    """Every HubService method by name, with how it streams (from the contract)."""
    service = hub_pb2.DESCRIPTOR.services_by_name["HubService"]
    return {
        method.name: MethodKind(method.client_streaming, method.server_streaming)
        for method in service.methods
    }


def frame(payload: bytes, flag: int = 0) -> bytes:
    return _FRAME.pack(flag, len(payload)) + payload


def trailer_frame(code: grpc.StatusCode, message: str, details: bytes | None) -> bytes:
    """The gRPC-Web trailer frame: HTTP/1-style header lines in a frame flagged 0x80."""
    lines = [f"grpc-status: {code.value[0]}"]
    if message:
        # The gRPC spec's percent-encoding of grpc-message (printable ASCII
        # but '%' is sent as is).
        lines.append("grpc-message: " + quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"))
    if details:
        lines.append(f"{DETAILS_KEY}: " + base64.b64encode(details).decode("ascii"))
    return frame(("\r\n".join(lines) + "\r\n").encode("ascii"), _TRAILER_FLAG)


def error_trailer(err: WshError) -> bytes:
    """A status the bridge itself gives, with the ErrorInfo every wsh status carries."""
    code = grpc.StatusCode[err.kind.value]
    ((_, details),) = status_metadata(err)
    return trailer_frame(code, status_pb2.Status.FromString(details).message, details)


def parse_timeout(value: str | None) -> float | None:
    """A grpc-timeout header in seconds (None: none or unreadable, so no deadline)."""
    if not value or len(value) > 9 or value[-1] not in _TIMEOUT_UNITS:
        return None
    digits = value[:-1]
    if not digits.isdigit():
        return None
    return int(digits) * _TIMEOUT_UNITS[value[-1]]


def parse_request(body: bytes) -> bytes:
    """The one message of a gRPC-Web request body (unary and server-streaming
    calls carry exactly one)."""
    if len(body) < _FRAME.size:
        raise WshError(Kind.INVALID_ARGUMENT, "MALFORMED_REQUEST", "The request has no message.")
    flag, length = _FRAME.unpack_from(body)
    if flag != 0:
        # Compressed (1) or a trailer frame: browsers send neither.
        raise WshError(
            Kind.INVALID_ARGUMENT, "MALFORMED_REQUEST", "Compressed requests are not accepted."
        )
    if len(body) != _FRAME.size + length:
        raise WshError(
            Kind.INVALID_ARGUMENT, "MALFORMED_REQUEST", "The request must hold exactly one message."
        )
    return body[_FRAME.size :]


class Bridge:
    """Serves gRPC-Web requests for ``/wsh.v1.HubService/*`` over one hub channel.

    ``token``: when set, every call must carry ``authorization: Bearer
    TOKEN`` (checked here, in constant time, before anything reaches the
    hub); when None the header goes on to the hub, which decides.
    """

    def __init__(self, channel: grpc.aio.Channel, prefix: str, token: str | None) -> None:
        self._channel = channel
        self._prefix = prefix
        self._token = token
        self._methods = hub_methods()

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"/{SERVICE}/{{method}}", self.handle)]

    def _check_auth(self, header: str | None) -> None:
        if self._token is None:
            return
        if not header:
            raise WshError(
                Kind.UNAUTHENTICATED, "UNAUTHENTICATED", "This web view requires a token."
            )
        expected = f"Bearer {self._token}".encode()
        if not hmac.compare_digest(header.encode("utf-8", "replace"), expected):
            raise WshError(Kind.PERMISSION_DENIED, "PERMISSION_DENIED", "The token is not valid.")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["method"]
        kind = self._methods.get(name)
        if kind is None:
            raise web.HTTPNotFound(text=f"no method {SERVICE}/{name}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in CONTENT_TYPES:
            # Not a gRPC-Web call at all (a form, a plain fetch): no gRPC status.
            raise web.HTTPUnsupportedMediaType(text="gRPC-Web (application/grpc-web+proto) only")
        response = web.StreamResponse(
            status=200,
            headers={"content-type": "application/grpc-web+proto", "cache-control": "no-store"},
        )
        await response.prepare(request)
        try:
            self._check_auth(request.headers.get("authorization"))
            if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
                raise _too_large()
            body = await request.content.read(MAX_REQUEST_BYTES + 1)
            if len(body) > MAX_REQUEST_BYTES:
                raise _too_large()
            message = parse_request(body)
        except WshError as err:
            await response.write(error_trailer(err))
            await response.write_eof()
            return response
        metadata = self._metadata(request)
        timeout = parse_timeout(request.headers.get("grpc-timeout"))
        try:
            await self._call(response, name, kind, message, metadata, timeout)
            await response.write_eof()
        except ConnectionResetError:
            # The browser went away mid-answer; the hub's call is cancelled.
            pass
        return response

    def _metadata(self, request: web.Request) -> tuple[tuple[str, str], ...]:
        header = request.headers.get("authorization")
        return (("authorization", header),) if header else ()

    async def _call(
        self,
        response: web.StreamResponse,
        name: str,
        kind: MethodKind,
        message: bytes,
        metadata: tuple[tuple[str, str], ...],
        deadline_s: float | None,
    ) -> None:
        path = f"{self._prefix}/{SERVICE}/{name}"
        call: Any
        # No serializers: grpc passes the bytes as they are, both ways.
        if kind.client_streaming:
            call = self._channel.stream_stream(path, None, None)(
                iter((message,)), metadata=metadata, timeout=deadline_s
            )
        elif kind.server_streaming:
            call = self._channel.unary_stream(path, None, None)(
                message, metadata=metadata, timeout=deadline_s
            )
        else:
            call = self._channel.unary_unary(path, None, None)(
                message, metadata=metadata, timeout=deadline_s
            )
        try:
            if kind.server_streaming:
                async for answer in call:
                    await response.write(frame(answer))
            else:
                await response.write(frame(await call))
            await response.write(trailer_frame(grpc.StatusCode.OK, "", None))
        except grpc.aio.AioRpcError as exc:
            await response.write(_status_trailer(exc))
        finally:
            # The browser went away (the handler is cancelled) or the write
            # failed: end the hub's call too, so no stream outlives its reader.
            call.cancel()


def _too_large() -> WshError:
    return WshError(
        Kind.INVALID_ARGUMENT, "MALFORMED_REQUEST", "The request is larger than 16 MiB."
    )


def _status_trailer(exc: grpc.aio.AioRpcError) -> bytes:
    details = None
    # grpc-stubs types this as the sync client's tuple; aio returns its Metadata.
    trailers = cast(grpc.aio.Metadata, exc.trailing_metadata()) or ()
    for key, value in trailers:
        if key == DETAILS_KEY and isinstance(value, bytes):
            details = value
    return trailer_frame(exc.code(), exc.details() or "", details)
