"""Python SDK for wsh: a blocking :class:`Client` and an asyncio :class:`AsyncClient`.

Both have one method per ``wsh.v1.HubService`` RPC, named in snake_case, taking
the request fields as keyword arguments and returning the typed protobuf result
(a ``Session``, a ``Screen``, an ``Idle``...). Every failed call raises
:class:`WshRpcError`, which carries the stable ``reason`` the server put in its
``google.rpc.ErrorInfo``.

The agent loop is one call::

    from wsh.client import Client

    with Client() as wsh:
        wsh.create_session("build")
        idle = wsh.run("build", "make\\n")
        print("\\n".join(idle.screen.lines))

Addresses are ``host:port``, ``http://host:port`` (plaintext) or
``https://host:port`` (TLS), optionally followed by a path prefix for servers
behind a reverse proxy. Without one, ``$WSH_ADDR`` then ``127.0.0.1:7600`` are
used; the token defaults to ``$WSH_TOKEN``.
"""

# Every method takes ``timeout``: the gRPC deadline, which travels to the server
# with the call; an asyncio timeout (what ASYNC109 asks for) would not.
# ruff: noqa: ASYNC109

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeAlias, TypedDict, TypeVar, Unpack, cast
from urllib.parse import urlsplit

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from wsh.defaults import DEFAULT_ADDR, DEFAULT_PORT
from wsh.v1 import hub_pb2, types_pb2

__all__ = [
    "DEFAULT_IDLE_MS",
    "AsyncClient",
    "AsyncIdleStream",
    "Client",
    "IdleStream",
    "RaceOptions",
    "ScreenFormatArg",
    "WshRpcError",
    "screen_format",
]

DEFAULT_IDLE_MS = 500
"""Quiet time, in milliseconds, after which :meth:`Client.run` calls a session idle."""

# Screens and scrollback pages (up to 10,000 styled lines) can exceed gRPC's
# 4 MiB default receive limit.
_MAX_RECEIVE_BYTES = 64 * 1024 * 1024
_DETAILS_KEY = "grpc-status-details-bin"
_FORMATS = {"plain": types_pb2.SCREEN_FORMAT_PLAIN, "styled": types_pb2.SCREEN_FORMAT_STYLED}
_SCHEME_PORTS = {"": DEFAULT_PORT, "http": 80, "https": 443}

# A string because ScreenFormat is an enum wrapper object at run time, not a type.
ScreenFormatArg: TypeAlias = "str | types_pb2.ScreenFormat.ValueType"
"""``"plain"``, ``"styled"`` or a ``types_pb2.ScreenFormat`` value."""


class WshRpcError(Exception):
    """A failed wsh call: the gRPC status plus the server's ``ErrorInfo``.

    ``reason`` is the stable UPPER_SNAKE word from the ``google.rpc.ErrorInfo``
    detail (``SESSION_NOT_FOUND``...), or ``""`` when the status carried none
    (connection failures, client-side deadlines). ``metadata`` is the
    ErrorInfo's metadata map.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, reason, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.reason or self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"WshRpcError({self.code.name}, {self.reason!r}, {self.message!r})"


def _error_from_status(code: grpc.StatusCode, message: str, status: Any) -> WshRpcError:
    """Build the error from a call's code and message and its ``google.rpc.Status``, if any."""
    reason = ""
    metadata: dict[str, str] = {}
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
            break
    return WshRpcError(code, reason, message, metadata)


def _sync_error(exc: grpc.RpcError) -> WshRpcError:
    status = None
    if isinstance(exc, grpc.Call):
        try:
            status = rpc_status.from_call(exc)
        except ValueError:
            # The peer's Status proto disagrees with the call's own status; the
            # call's code and message are what gRPC acted on, so keep those.
            status = None
    return _error_from_status(exc.code(), exc.details() or "", status)


def _aio_error(exc: grpc.aio.AioRpcError) -> WshRpcError:
    # grpc-stubs types this as the sync client's tuple; aio returns its Metadata.
    trailers = cast(grpc.aio.Metadata, exc.trailing_metadata())
    raw = trailers.get(_DETAILS_KEY) if trailers is not None else None
    status = None
    if isinstance(raw, bytes):
        try:
            status = status_pb2.Status.FromString(raw)
        except DecodeError:
            status = None
    return _error_from_status(exc.code(), exc.details() or "", status)


# --- Addresses and credentials -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Endpoint:
    target: str  # host:port for grpc, IPv6 bracketed
    tls: bool | None  # None: the address did not say (bare host:port)
    prefix: str  # "" or "/seg..." prepended to every method path


def _parse_addr(addr: str) -> _Endpoint:
    if addr.startswith("unix:"):
        return _Endpoint(addr, None, "")  # a local socket, passed to gRPC as is
    scheme, sep, rest = addr.partition("://")
    if not sep:
        scheme, rest = "", addr
    scheme = scheme.lower()
    if scheme not in _SCHEME_PORTS:
        raise ValueError(f"unsupported scheme in address {addr!r}: use http://, https:// or none")
    parts = urlsplit("//" + rest)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid port in address {addr!r}") from exc
    if not parts.hostname or parts.username or parts.query or parts.fragment:
        raise ValueError(f"invalid address {addr!r}: expected [http[s]://]host[:port][/prefix]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None:
        port = _SCHEME_PORTS[scheme]
    tls = {"": None, "http": False, "https": True}[scheme]
    return _Endpoint(f"{host}:{port}", tls, parts.path.rstrip("/"))


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _credentials(
    endpoint: _Endpoint,
    tls: bool,
    ca_file: str | None,
    client_cert: str | None,
    client_key: str | None,
) -> grpc.ChannelCredentials | None:
    if bool(client_cert) != bool(client_key):
        raise ValueError("client_cert and client_key must be given together")
    wants_tls = tls or bool(ca_file or client_cert)
    if endpoint.tls is False and wants_tls:
        raise ValueError("an http:// address is plaintext; use https:// for TLS")
    if not (endpoint.tls or wants_tls):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(client_key),
        certificate_chain=_read(client_cert),
    )


# --- Methods and requests ------------------------------------------------------
# The request builders below are shared by Client and AsyncClient, so the two
# differ only in how they invoke the channel.

ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)

_SERVICE = hub_pb2.DESCRIPTOR.services_by_name["HubService"]


@dataclass(frozen=True, slots=True)
class _Method(Generic[ReqT, RespT]):
    """One HubService RPC with its message classes.

    The generated stub is untyped, so calls go through the channel with these
    typed descriptions instead; each is checked against the proto at import.
    """

    name: str
    request: type[ReqT]
    response: type[RespT]

    def __post_init__(self) -> None:
        method = _SERVICE.methods_by_name[self.name]
        if (method.input_type.full_name, method.output_type.full_name) != (
            self.request.DESCRIPTOR.full_name,
            self.response.DESCRIPTOR.full_name,
        ):
            raise TypeError(f"{self.name}: message types differ from the proto")

    @property
    def path(self) -> str:
        return f"/{_SERVICE.full_name}/{self.name}"


_CREATE_SESSION = _Method(
    "CreateSession", hub_pb2.CreateSessionRequest, hub_pb2.CreateSessionResponse
)
_LIST_SESSIONS = _Method("ListSessions", hub_pb2.ListSessionsRequest, hub_pb2.ListSessionsResponse)
_GET_SESSION = _Method("GetSession", hub_pb2.GetSessionRequest, hub_pb2.GetSessionResponse)
_UPDATE_SESSION = _Method(
    "UpdateSession", hub_pb2.UpdateSessionRequest, hub_pb2.UpdateSessionResponse
)
_KILL_SESSION = _Method("KillSession", hub_pb2.KillSessionRequest, hub_pb2.KillSessionResponse)
_SEND_INPUT = _Method("SendInput", hub_pb2.SendInputRequest, hub_pb2.SendInputResponse)
_GET_SCREEN = _Method("GetScreen", hub_pb2.GetScreenRequest, hub_pb2.GetScreenResponse)
_GET_SCROLLBACK = _Method(
    "GetScrollback", hub_pb2.GetScrollbackRequest, hub_pb2.GetScrollbackResponse
)
_RESIZE_SESSION = _Method(
    "ResizeSession", hub_pb2.ResizeSessionRequest, hub_pb2.ResizeSessionResponse
)
_AWAIT_IDLE = _Method("AwaitIdle", hub_pb2.AwaitIdleRequest, hub_pb2.AwaitIdleResponse)
_RACE_IDLE = _Method("RaceIdle", hub_pb2.RaceIdleRequest, hub_pb2.RaceIdleResponse)
_LIST_SERVERS = _Method("ListServers", hub_pb2.ListServersRequest, hub_pb2.ListServersResponse)
_GET_SERVER = _Method("GetServer", hub_pb2.GetServerRequest, hub_pb2.GetServerResponse)
_ADD_SERVER = _Method("AddServer", hub_pb2.AddServerRequest, hub_pb2.AddServerResponse)
_REMOVE_SERVER = _Method("RemoveServer", hub_pb2.RemoveServerRequest, hub_pb2.RemoveServerResponse)
_RELOAD_CONFIG = _Method("ReloadConfig", hub_pb2.ReloadConfigRequest, hub_pb2.ReloadConfigResponse)
_GET_SERVER_INFO = _Method(
    "GetServerInfo", hub_pb2.GetServerInfoRequest, hub_pb2.GetServerInfoResponse
)


def screen_format(value: ScreenFormatArg) -> types_pb2.ScreenFormat.ValueType:
    """Map ``"plain"``/``"styled"`` (any case) or an enum value to ``ScreenFormat``."""
    if isinstance(value, str):
        try:
            return _FORMATS[value.lower()]
        except KeyError:
            raise ValueError(f"unknown screen format {value!r}: use 'plain' or 'styled'") from None
    return value


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _create_session_request(
    name: str,
    server: str,
    command: str,
    rows: int,
    cols: int,
    cwd: str,
    env: Mapping[str, str] | None,
    tags: Iterable[str],
) -> hub_pb2.CreateSessionRequest:
    return hub_pb2.CreateSessionRequest(
        server=server,
        name=name,
        command=command,
        rows=rows,
        cols=cols,
        cwd=cwd,
        env=dict(env or {}),
        tags=list(tags),
    )


def _list_sessions_request(server: str, tags: Iterable[str]) -> hub_pb2.ListSessionsRequest:
    return hub_pb2.ListSessionsRequest(server=server, tags=list(tags))


def _update_session_request(
    name: str, server: str, new_name: str, add_tags: Iterable[str], remove_tags: Iterable[str]
) -> hub_pb2.UpdateSessionRequest:
    return hub_pb2.UpdateSessionRequest(
        server=server,
        name=name,
        new_name=new_name,
        add_tags=list(add_tags),
        remove_tags=list(remove_tags),
    )


def _send_input_request(name: str, data: str | bytes, server: str) -> hub_pb2.SendInputRequest:
    return hub_pb2.SendInputRequest(server=server, name=name, data=_as_bytes(data))


def _get_screen_request(name: str, server: str, fmt: ScreenFormatArg) -> hub_pb2.GetScreenRequest:
    return hub_pb2.GetScreenRequest(server=server, name=name, format=screen_format(fmt))


def _get_scrollback_request(
    name: str, server: str, offset: int, limit: int, fmt: ScreenFormatArg
) -> hub_pb2.GetScrollbackRequest:
    return hub_pb2.GetScrollbackRequest(
        server=server, name=name, offset=offset, limit=limit, format=screen_format(fmt)
    )


def _await_idle_request(
    name: str,
    server: str,
    timeout_ms: int,
    max_wait_ms: int,
    last_generation: int | None,
    fresh: bool,
    fmt: ScreenFormatArg,
) -> hub_pb2.AwaitIdleRequest:
    # Leaving the optional field unset (rather than 0) is what tells the server
    # there is no previous generation to wait past.
    return hub_pb2.AwaitIdleRequest(
        server=server,
        name=name,
        timeout_ms=timeout_ms,
        max_wait_ms=max_wait_ms,
        last_generation=last_generation,
        fresh=fresh,
        format=screen_format(fmt),
    )


def _race_idle_request(
    tags: Iterable[str],
    server: str,
    timeout_ms: int,
    max_wait_ms: int,
    last_session: str,
    last_server: str,
    last_generation: int | None,
    fresh: bool,
    fmt: ScreenFormatArg,
) -> hub_pb2.RaceIdleRequest:
    return hub_pb2.RaceIdleRequest(
        tags=list(tags),
        server=server,
        timeout_ms=timeout_ms,
        max_wait_ms=max_wait_ms,
        last_session=last_session,
        last_server=last_server,
        last_generation=last_generation,
        fresh=fresh,
        format=screen_format(fmt),
    )


def _add_server_request(
    address: str, token: str | None, wait: bool, wait_timeout_ms: int
) -> hub_pb2.AddServerRequest:
    return hub_pb2.AddServerRequest(
        address=address, token=token, wait=wait, wait_timeout_ms=wait_timeout_ms
    )


class RaceOptions(TypedDict, total=False):
    """Keyword arguments of ``race_idle``, as ``race_first`` takes them."""

    tags: Iterable[str]
    server: str
    timeout_ms: int
    max_wait_ms: int
    last_session: str
    last_server: str
    last_generation: int | None
    fresh: bool
    format: ScreenFormatArg
    timeout: float | None


def _empty_race() -> WshRpcError:
    return WshRpcError(grpc.StatusCode.UNKNOWN, "", "RaceIdle ended without a result")


# --- Clients -------------------------------------------------------------------


class _Base:
    """Connection settings shared by both clients; no channel of its own."""

    def __init__(
        self,
        addr: str | None,
        token: str | None,
        ca_file: str | None,
        client_cert: str | None,
        client_key: str | None,
        tls: bool,
        timeout: float | None,
    ) -> None:
        self.addr = addr or os.environ.get("WSH_ADDR") or DEFAULT_ADDR
        endpoint = _parse_addr(self.addr)
        self._target = endpoint.target
        self._prefix = endpoint.prefix
        self._credentials = _credentials(endpoint, tls, ca_file, client_cert, client_key)
        token = os.environ.get("WSH_TOKEN") if token is None else token
        self._metadata: tuple[tuple[str, str], ...] | None = (
            (("authorization", f"Bearer {token}"),) if token else None
        )
        self._timeout = timeout
        self._options = [("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES)]

    @property
    def secure(self) -> bool:
        """Whether the channel uses TLS."""
        return self._credentials is not None

    def _deadline(self, timeout: float | None) -> float | None:
        return self._timeout if timeout is None else timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(addr={self.addr!r}, secure={self.secure})"


class IdleStream:
    """The ``Idle`` results of a ``RaceIdle`` call, in the order sessions settle.

    Iterate it; ``cancel()``, or leaving a ``with`` block, ends the stream.
    """

    def __init__(self, call: grpc.CallIterator[hub_pb2.RaceIdleResponse]) -> None:
        self._call = call
        self._responses = iter(call)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> types_pb2.Idle:
        try:
            return next(self._responses).idle
        except grpc.RpcError as exc:
            raise _sync_error(exc) from exc

    def cancel(self) -> None:
        """End the stream; the server stops racing."""
        self._call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class AsyncIdleStream:
    """Async form of :class:`IdleStream`: ``async for`` it, ``cancel()`` to end it."""

    def __init__(
        self, call: grpc.aio.UnaryStreamCall[hub_pb2.RaceIdleRequest, hub_pb2.RaceIdleResponse]
    ) -> None:
        self._call = call
        self._responses = aiter(call)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> types_pb2.Idle:
        try:
            response = await anext(self._responses)
        except grpc.aio.AioRpcError as exc:
            raise _aio_error(exc) from exc
        return response.idle

    def cancel(self) -> None:
        """End the stream; the server stops racing."""
        self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()


class Client(_Base):
    """Blocking client of a wsh server's HubService.

    Args:
        addr: ``host:port``, ``http://host:port[/prefix]`` or
            ``https://host:port[/prefix]``; default ``$WSH_ADDR``, then
            ``127.0.0.1:7600``.
        token: bearer token sent with every call; default ``$WSH_TOKEN``.
        ca_file: PEM root certificates to trust; implies TLS.
        client_cert, client_key: PEM certificate chain and key for mutual TLS.
        tls: use TLS with the system's root certificates.
        timeout: default deadline of every call, in seconds (``None``: none).

    ``addr`` holds the address in use and ``secure`` whether it is TLS.
    Every method also takes ``timeout`` (seconds), which overrides the default
    for that call, and raises :class:`WshRpcError` when the call fails.
    Methods on sessions take ``server``: the hostname owning the session,
    ``""`` for the server this client talks to.
    """

    def __init__(
        self,
        addr: str | None = None,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        tls: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(addr, token, ca_file, client_cert, client_key, tls, timeout)
        if self._credentials is None:
            self._channel = grpc.insecure_channel(self._target, options=self._options)
        else:
            self._channel = grpc.secure_channel(
                self._target, self._credentials, options=self._options
            )

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _unary(self, method: _Method[ReqT, RespT], request: ReqT, timeout: float | None) -> RespT:
        call: grpc.UnaryUnaryMultiCallable[ReqT, RespT] = self._channel.unary_unary(
            self._prefix + method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        try:
            return call(request, timeout=self._deadline(timeout), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _sync_error(exc) from exc

    def create_session(
        self,
        name: str = "",
        *,
        server: str = "",
        command: str = "",
        rows: int = 0,
        cols: int = 0,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        tags: Iterable[str] = (),
        timeout: float | None = None,
    ) -> types_pb2.Session:
        """Start ``command`` (empty: a login shell) on a new PTY; ``name`` empty: server picks.

        ``rows``/``cols`` of 0 mean the server's default size.
        """
        request = _create_session_request(name, server, command, rows, cols, cwd, env, tags)
        return self._unary(_CREATE_SESSION, request, timeout).session

    def list_sessions(
        self, *, server: str = "", tags: Iterable[str] = (), timeout: float | None = None
    ) -> list[types_pb2.Session]:
        """Sessions having any of ``tags`` (none: all), on ``server`` (empty: whole cluster)."""
        request = _list_sessions_request(server, tags)
        return list(self._unary(_LIST_SESSIONS, request, timeout).sessions)

    def list_sessions_response(
        self, *, server: str = "", tags: Iterable[str] = (), timeout: float | None = None
    ) -> hub_pb2.ListSessionsResponse:
        """Like :meth:`list_sessions`, plus ``missing_servers``: those not HEALTHY, not listed."""
        return self._unary(_LIST_SESSIONS, _list_sessions_request(server, tags), timeout)

    def get_session(
        self, name: str, *, server: str = "", timeout: float | None = None
    ) -> types_pb2.Session:
        """One session by name."""
        request = hub_pb2.GetSessionRequest(server=server, name=name)
        return self._unary(_GET_SESSION, request, timeout).session

    def update_session(
        self,
        name: str,
        *,
        server: str = "",
        new_name: str = "",
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        timeout: float | None = None,
    ) -> types_pb2.Session:
        """Rename (``new_name`` non-empty) and retag a session, all or nothing."""
        request = _update_session_request(name, server, new_name, add_tags, remove_tags)
        return self._unary(_UPDATE_SESSION, request, timeout).session

    def kill_session(self, name: str, *, server: str = "", timeout: float | None = None) -> None:
        """End the session's process group and forget the session."""
        self._unary(_KILL_SESSION, hub_pb2.KillSessionRequest(server=server, name=name), timeout)

    def send_input(
        self, name: str, data: str | bytes, *, server: str = "", timeout: float | None = None
    ) -> hub_pb2.SendInputResponse:
        """Write ``data`` (a ``str`` is sent as UTF-8) to the PTY.

        The response's ``generation`` counts this input; pass it to
        :meth:`await_idle` as ``last_generation`` to wait for its output.
        """
        return self._unary(_SEND_INPUT, _send_input_request(name, data, server), timeout)

    def get_screen(
        self,
        name: str,
        *,
        server: str = "",
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> types_pb2.Screen:
        """The visible screen, as plain lines or styled spans."""
        request = _get_screen_request(name, server, format)
        return self._unary(_GET_SCREEN, request, timeout).screen

    def get_scrollback(
        self,
        name: str,
        *,
        server: str = "",
        offset: int = 0,
        limit: int = 0,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> hub_pb2.GetScrollbackResponse:
        """A page of all lines (scrollback then screen, oldest first); ``limit`` 0: default."""
        request = _get_scrollback_request(name, server, offset, limit, format)
        return self._unary(_GET_SCROLLBACK, request, timeout)

    def resize_session(
        self, name: str, rows: int, cols: int, *, server: str = "", timeout: float | None = None
    ) -> types_pb2.Session:
        """Change the PTY size."""
        request = hub_pb2.ResizeSessionRequest(server=server, name=name, rows=rows, cols=cols)
        return self._unary(_RESIZE_SESSION, request, timeout).session

    def await_idle(
        self,
        name: str,
        *,
        server: str = "",
        timeout_ms: int = DEFAULT_IDLE_MS,
        max_wait_ms: int = 0,
        last_generation: int | None = None,
        fresh: bool = False,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> types_pb2.Idle:
        """Wait until the session has been quiet for ``timeout_ms``.

        With ``last_generation`` equal to the current generation, first wait
        for new activity; ``fresh`` always waits a full ``timeout_ms``.
        ``max_wait_ms`` 0 means the server's default (30 s); past it the call
        fails with ``DEADLINE_EXCEEDED``.
        """
        request = _await_idle_request(
            name, server, timeout_ms, max_wait_ms, last_generation, fresh, format
        )
        return self._unary(_AWAIT_IDLE, request, timeout).idle

    def race_idle(
        self,
        *,
        tags: Iterable[str] = (),
        server: str = "",
        timeout_ms: int = DEFAULT_IDLE_MS,
        max_wait_ms: int = 0,
        last_session: str = "",
        last_server: str = "",
        last_generation: int | None = None,
        fresh: bool = False,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> IdleStream:
        """Stream sessions in scope (``tags``: any of; ``server``: filter) as they settle.

        The session ``last_session`` on ``last_server`` is skipped until its
        generation moves past ``last_generation``. Use it as a context manager,
        or call ``cancel()``, to end the stream early.
        """
        request = _race_idle_request(
            tags,
            server,
            timeout_ms,
            max_wait_ms,
            last_session,
            last_server,
            last_generation,
            fresh,
            format,
        )
        call: grpc.UnaryStreamMultiCallable[hub_pb2.RaceIdleRequest, hub_pb2.RaceIdleResponse] = (
            self._channel.unary_stream(
                self._prefix + _RACE_IDLE.path,
                request_serializer=_RACE_IDLE.request.SerializeToString,
                response_deserializer=_RACE_IDLE.response.FromString,
            )
        )
        return IdleStream(call(request, timeout=self._deadline(timeout), metadata=self._metadata))

    def race_first(self, **options: Unpack[RaceOptions]) -> types_pb2.Idle:
        """The first session to settle (see :meth:`race_idle`); the stream is then cancelled."""
        with self.race_idle(**options) as stream:
            for idle in stream:
                return idle
        raise _empty_race()

    def run(
        self,
        session: str,
        text: str | bytes,
        timeout_ms: int = DEFAULT_IDLE_MS,
        *,
        server: str = "",
        max_wait_ms: int = 0,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> types_pb2.Idle:
        """Send ``text`` then wait until the output it caused has settled.

        The wait starts from the generation the input produced, so the result
        never shows the screen from before the input.
        """
        sent = self.send_input(session, text, server=server, timeout=timeout)
        return self.await_idle(
            session,
            server=server,
            timeout_ms=timeout_ms,
            max_wait_ms=max_wait_ms,
            last_generation=sent.generation,
            format=format,
            timeout=timeout,
        )

    def list_servers(self, *, timeout: float | None = None) -> list[hub_pb2.Server]:
        """This server first, then every registered backend."""
        request = hub_pb2.ListServersRequest()
        return list(self._unary(_LIST_SERVERS, request, timeout).servers)

    def get_server(self, hostname: str, *, timeout: float | None = None) -> hub_pb2.Server:
        """One server of the cluster by hostname."""
        request = hub_pb2.GetServerRequest(hostname=hostname)
        return self._unary(_GET_SERVER, request, timeout).server

    def add_server(
        self,
        address: str,
        *,
        token: str | None = None,
        wait: bool = False,
        wait_timeout_ms: int = 0,
        timeout: float | None = None,
    ) -> hub_pb2.Server:
        """Register a backend at ``http[s]://host:port[/prefix]``.

        Without ``wait`` it returns at once (CONNECTING); with it, once the
        backend is HEALTHY or REJECTED or ``wait_timeout_ms`` (0: 10 s) passed.
        """
        request = _add_server_request(address, token, wait, wait_timeout_ms)
        return self._unary(_ADD_SERVER, request, timeout).server

    def remove_server(
        self, hostname: str = "", *, address: str = "", timeout: float | None = None
    ) -> None:
        """Deregister a backend by hostname, or by address while its hostname is unknown."""
        request = hub_pb2.RemoveServerRequest(hostname=hostname, address=address)
        self._unary(_REMOVE_SERVER, request, timeout)

    def reload_config(self, *, timeout: float | None = None) -> hub_pb2.ReloadConfigResponse:
        """Reconcile the registered backends with the server's config file."""
        return self._unary(_RELOAD_CONFIG, hub_pb2.ReloadConfigRequest(), timeout)

    def get_server_info(self, *, timeout: float | None = None) -> hub_pb2.GetServerInfoResponse:
        """Identity of the server this client talks to."""
        return self._unary(_GET_SERVER_INFO, hub_pb2.GetServerInfoRequest(), timeout)


class AsyncClient(_Base):
    """Asyncio client of a wsh server's HubService; see :class:`Client` for the arguments.

    Methods mirror :class:`Client` and are coroutines, except
    :meth:`race_idle`, which returns an async iterator. Create it inside a
    running event loop.
    """

    def __init__(
        self,
        addr: str | None = None,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        tls: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(addr, token, ca_file, client_cert, client_key, tls, timeout)
        if self._credentials is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
        else:
            self._channel = grpc.aio.secure_channel(
                self._target, self._credentials, options=self._options
            )

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(
        self, method: _Method[ReqT, RespT], request: ReqT, timeout: float | None
    ) -> RespT:
        call: grpc.aio.UnaryUnaryMultiCallable[ReqT, RespT] = self._channel.unary_unary(
            self._prefix + method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        try:
            return await call(request, timeout=self._deadline(timeout), metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise _aio_error(exc) from exc

    async def create_session(
        self,
        name: str = "",
        *,
        server: str = "",
        command: str = "",
        rows: int = 0,
        cols: int = 0,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        tags: Iterable[str] = (),
        timeout: float | None = None,
    ) -> types_pb2.Session:
        """See :meth:`Client.create_session`."""
        request = _create_session_request(name, server, command, rows, cols, cwd, env, tags)
        return (await self._unary(_CREATE_SESSION, request, timeout)).session

    async def list_sessions(
        self, *, server: str = "", tags: Iterable[str] = (), timeout: float | None = None
    ) -> list[types_pb2.Session]:
        """See :meth:`Client.list_sessions`."""
        request = _list_sessions_request(server, tags)
        return list((await self._unary(_LIST_SESSIONS, request, timeout)).sessions)

    async def list_sessions_response(
        self, *, server: str = "", tags: Iterable[str] = (), timeout: float | None = None
    ) -> hub_pb2.ListSessionsResponse:
        """Like :meth:`list_sessions`, plus ``missing_servers``: those not HEALTHY, not listed."""
        return await self._unary(_LIST_SESSIONS, _list_sessions_request(server, tags), timeout)

    async def get_session(
        self, name: str, *, server: str = "", timeout: float | None = None
    ) -> types_pb2.Session:
        """See :meth:`Client.get_session`."""
        request = hub_pb2.GetSessionRequest(server=server, name=name)
        return (await self._unary(_GET_SESSION, request, timeout)).session

    async def update_session(
        self,
        name: str,
        *,
        server: str = "",
        new_name: str = "",
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        timeout: float | None = None,
    ) -> types_pb2.Session:
        """See :meth:`Client.update_session`."""
        request = _update_session_request(name, server, new_name, add_tags, remove_tags)
        return (await self._unary(_UPDATE_SESSION, request, timeout)).session

    async def kill_session(
        self, name: str, *, server: str = "", timeout: float | None = None
    ) -> None:
        """See :meth:`Client.kill_session`."""
        request = hub_pb2.KillSessionRequest(server=server, name=name)
        await self._unary(_KILL_SESSION, request, timeout)

    async def send_input(
        self, name: str, data: str | bytes, *, server: str = "", timeout: float | None = None
    ) -> hub_pb2.SendInputResponse:
        """See :meth:`Client.send_input`."""
        return await self._unary(_SEND_INPUT, _send_input_request(name, data, server), timeout)

    async def get_screen(
        self,
        name: str,
        *,
        server: str = "",
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> types_pb2.Screen:
        """See :meth:`Client.get_screen`."""
        request = _get_screen_request(name, server, format)
        return (await self._unary(_GET_SCREEN, request, timeout)).screen

    async def get_scrollback(
        self,
        name: str,
        *,
        server: str = "",
        offset: int = 0,
        limit: int = 0,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> hub_pb2.GetScrollbackResponse:
        """See :meth:`Client.get_scrollback`."""
        request = _get_scrollback_request(name, server, offset, limit, format)
        return await self._unary(_GET_SCROLLBACK, request, timeout)

    async def resize_session(
        self, name: str, rows: int, cols: int, *, server: str = "", timeout: float | None = None
    ) -> types_pb2.Session:
        """See :meth:`Client.resize_session`."""
        request = hub_pb2.ResizeSessionRequest(server=server, name=name, rows=rows, cols=cols)
        return (await self._unary(_RESIZE_SESSION, request, timeout)).session

    async def await_idle(
        self,
        name: str,
        *,
        server: str = "",
        timeout_ms: int = DEFAULT_IDLE_MS,
        max_wait_ms: int = 0,
        last_generation: int | None = None,
        fresh: bool = False,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> types_pb2.Idle:
        """See :meth:`Client.await_idle`."""
        request = _await_idle_request(
            name, server, timeout_ms, max_wait_ms, last_generation, fresh, format
        )
        return (await self._unary(_AWAIT_IDLE, request, timeout)).idle

    def race_idle(
        self,
        *,
        tags: Iterable[str] = (),
        server: str = "",
        timeout_ms: int = DEFAULT_IDLE_MS,
        max_wait_ms: int = 0,
        last_session: str = "",
        last_server: str = "",
        last_generation: int | None = None,
        fresh: bool = False,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> AsyncIdleStream:
        """See :meth:`Client.race_idle`; use it with ``async for`` / ``async with``."""
        request = _race_idle_request(
            tags,
            server,
            timeout_ms,
            max_wait_ms,
            last_session,
            last_server,
            last_generation,
            fresh,
            format,
        )
        call: grpc.aio.UnaryStreamMultiCallable[
            hub_pb2.RaceIdleRequest, hub_pb2.RaceIdleResponse
        ] = self._channel.unary_stream(
            self._prefix + _RACE_IDLE.path,
            request_serializer=_RACE_IDLE.request.SerializeToString,
            response_deserializer=_RACE_IDLE.response.FromString,
        )
        return AsyncIdleStream(
            call(request, timeout=self._deadline(timeout), metadata=self._metadata)
        )

    async def race_first(self, **options: Unpack[RaceOptions]) -> types_pb2.Idle:
        """See :meth:`Client.race_first`."""
        async with self.race_idle(**options) as stream:
            async for idle in stream:
                return idle
        raise _empty_race()

    async def run(
        self,
        session: str,
        text: str | bytes,
        timeout_ms: int = DEFAULT_IDLE_MS,
        *,
        server: str = "",
        max_wait_ms: int = 0,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> types_pb2.Idle:
        """See :meth:`Client.run`."""
        sent = await self.send_input(session, text, server=server, timeout=timeout)
        return await self.await_idle(
            session,
            server=server,
            timeout_ms=timeout_ms,
            max_wait_ms=max_wait_ms,
            last_generation=sent.generation,
            format=format,
            timeout=timeout,
        )

    async def list_servers(self, *, timeout: float | None = None) -> list[hub_pb2.Server]:
        """See :meth:`Client.list_servers`."""
        request = hub_pb2.ListServersRequest()
        return list((await self._unary(_LIST_SERVERS, request, timeout)).servers)

    async def get_server(self, hostname: str, *, timeout: float | None = None) -> hub_pb2.Server:
        """See :meth:`Client.get_server`."""
        request = hub_pb2.GetServerRequest(hostname=hostname)
        return (await self._unary(_GET_SERVER, request, timeout)).server

    async def add_server(
        self,
        address: str,
        *,
        token: str | None = None,
        wait: bool = False,
        wait_timeout_ms: int = 0,
        timeout: float | None = None,
    ) -> hub_pb2.Server:
        """See :meth:`Client.add_server`."""
        request = _add_server_request(address, token, wait, wait_timeout_ms)
        return (await self._unary(_ADD_SERVER, request, timeout)).server

    async def remove_server(
        self, hostname: str = "", *, address: str = "", timeout: float | None = None
    ) -> None:
        """See :meth:`Client.remove_server`."""
        request = hub_pb2.RemoveServerRequest(hostname=hostname, address=address)
        await self._unary(_REMOVE_SERVER, request, timeout)

    async def reload_config(self, *, timeout: float | None = None) -> hub_pb2.ReloadConfigResponse:
        """See :meth:`Client.reload_config`."""
        return await self._unary(_RELOAD_CONFIG, hub_pb2.ReloadConfigRequest(), timeout)

    async def get_server_info(
        self, *, timeout: float | None = None
    ) -> hub_pb2.GetServerInfoResponse:
        """See :meth:`Client.get_server_info`."""
        return await self._unary(_GET_SERVER_INFO, hub_pb2.GetServerInfoRequest(), timeout)
