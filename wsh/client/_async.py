"""The SDK's clients, written once: ``_async.py`` (asyncio) is the source, and the
blocking ``_sync.py`` is generated from it by ``scripts/generate-sync-client``.

Only flavour-neutral code goes in ``_async.py``: what the asyncio and blocking
gRPC APIs do differently lives in ``_aio_io.py`` and its hand-written blocking
twin ``_sync_io.py``, which export the same names. Adding an RPC is one method
in ``_async.py``, then running the script.
"""

# Every method takes ``timeout``: the gRPC deadline, which travels to the server
# with the call; an asyncio timeout (what ASYNC109 asks for) would not.
# ruff: noqa: ASYNC109

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Self, TypeVar, Unpack

from google.protobuf.message import Message

from wsh.client._address import credentials, parse_addr
from wsh.client._aio_io import (
    AttachCall,
    RaceCall,
    RpcError,
    UnaryUnary,
    WatchCall,
    cancel_call,
    close_channel,
    open_channel,
    open_stub,
    rpc_error,
)
from wsh.client._errors import empty_race
from wsh.client._params import (
    DEFAULT_IDLE_MS,
    ExclusionArg,
    IdleModeArg,
    RaceOptions,
    ScreenFormatArg,
    as_bytes,
    exclusions,
    idle_mode,
    screen_format,
)
from wsh.defaults import DEFAULT_ADDR
from wsh.v1 import hub_pb2, types_pb2

ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)


class AsyncIdleStream:
    """The ``Idle`` results of a ``RaceIdle`` call, in the order sessions settle.

    Iterate it (``async for`` the asyncio one); ``cancel()``, or leaving a
    ``with`` (``async with``) block, ends the stream.
    """

    def __init__(self, call: RaceCall) -> None:
        self._call = call
        self._responses = aiter(call)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> types_pb2.Idle:
        try:
            response = await anext(self._responses)
        except RpcError as exc:
            raise rpc_error(exc) from exc
        return response.idle

    def cancel(self) -> None:
        """End the stream; the server stops racing."""
        cancel_call(self._call)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()


class AsyncWatchStream:
    """The events of a ``WatchSessions`` call: a snapshot of the sessions and
    servers in scope, ended by a ``WATCH_EVENT_SYNCED`` event, then one event
    per change (see ``WatchSessionsResponse`` in the proto).

    Iterate it (``async for`` the asyncio one); it never ends by itself.
    ``cancel()``, or leaving a ``with`` (``async with``) block, ends it.
    """

    def __init__(self, call: WatchCall) -> None:
        self._call = call
        self._responses = aiter(call)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> hub_pb2.WatchSessionsResponse:
        try:
            return await anext(self._responses)
        except RpcError as exc:
            raise rpc_error(exc) from exc

    def cancel(self) -> None:
        """End the stream."""
        cancel_call(self._call)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()


class AsyncAttachment:
    """A live ``Attach`` to one session (see :meth:`AsyncClient.attach`).

    Iterate it (``async for`` the asyncio one) for the bytes to write to a
    terminal, in order: the first snapshot's repaint, the session's output,
    and a new repaint after each resync (this client fell behind and output
    was dropped for it). Iteration ends when the stream does: after
    :meth:`detach`, or once the process exited (then ``exit_code`` is set).
    Errors raise :class:`WshRpcError` (SESSION_NOT_FOUND once the session is
    killed, ATTACH_READ_ONLY for input on a read-only attach...).

    ``snapshot`` is the last ``AttachSnapshot`` (its ``screen`` as GetScreen
    gives it, its ``generation``, its ``resyncs``). Leaving a ``with``
    (``async with``) block, or :meth:`cancel`, ends the stream.
    """

    def __init__(self, call: AttachCall) -> None:
        self._call = call
        self.snapshot: hub_pb2.AttachSnapshot | None = None
        self.exit_code: int | None = None

    @property
    def resyncs(self) -> int:
        """Snapshots sent again because this client fell behind."""
        return self.snapshot.resyncs if self.snapshot is not None else 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        while True:
            try:
                response = await self._call.read()
            except RpcError as exc:
                self.cancel()
                raise rpc_error(exc) from exc
            if response is None:
                self.cancel()
                raise StopAsyncIteration
            kind = response.WhichOneof("response")
            if kind == "snapshot":
                self.snapshot = response.snapshot
                return response.snapshot.repaint
            if kind == "output":
                return response.output
            if kind == "end":
                self.exit_code = response.end.exit_code

    async def send(self, data: str | bytes) -> None:
        """Input for the program (a str is sent as UTF-8), at most 1 MiB."""
        await self._call.write(hub_pb2.AttachRequest(input=as_bytes(data)))

    async def resize(self, rows: int, cols: int) -> None:
        """Resize the session (the last resize of any attacher wins)."""
        size = hub_pb2.AttachSize(rows=rows, cols=cols)
        await self._call.write(hub_pb2.AttachRequest(resize=size))

    async def detach(self) -> None:
        """End the stream cleanly; the session runs on. Iteration then ends."""
        await self._call.write(hub_pb2.AttachRequest(detach=hub_pb2.AttachDetach()))

    def cancel(self) -> None:
        """End the stream at once."""
        self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()


class AsyncClient:
    """Client of a wsh server's HubService: ``Client`` blocks, ``AsyncClient`` is asyncio.

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

    ``AsyncClient``'s methods are coroutines, except :meth:`race_idle` and
    :meth:`watch_sessions` (or :meth:`watch`) and :meth:`attach`, which
    return async iterators; create them inside a running event loop.
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
        self.addr = addr or os.environ.get("WSH_ADDR") or DEFAULT_ADDR
        endpoint = parse_addr(self.addr)
        channel_credentials = credentials(endpoint, tls, ca_file, client_cert, client_key)
        token = os.environ.get("WSH_TOKEN") if token is None else token
        self._metadata: tuple[tuple[str, str], ...] | None = (
            (("authorization", f"Bearer {token}"),) if token else None
        )
        self._timeout = timeout
        self._secure = channel_credentials is not None
        self._channel = open_channel(endpoint.target, channel_credentials)
        self._stub = open_stub(self._channel, endpoint.prefix)

    @property
    def secure(self) -> bool:
        """Whether the channel uses TLS."""
        return self._secure

    def __repr__(self) -> str:
        return f"{type(self).__name__}(addr={self.addr!r}, secure={self.secure})"

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await close_channel(self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _deadline(self, timeout: float | None) -> float | None:
        return self._timeout if timeout is None else timeout

    async def _unary(
        self, method: UnaryUnary[ReqT, RespT], request: ReqT, timeout: float | None
    ) -> RespT:
        try:
            return await method(request, timeout=self._deadline(timeout), metadata=self._metadata)
        except RpcError as exc:
            raise rpc_error(exc) from exc

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
        """Start ``command`` (empty: a login shell) on a new PTY; ``name`` empty: server picks.

        ``rows``/``cols`` of 0 mean the server's default size.
        """
        request = hub_pb2.CreateSessionRequest(
            server=server,
            name=name,
            command=command,
            rows=rows,
            cols=cols,
            cwd=cwd,
            env=dict(env or {}),
            tags=list(tags),
        )
        return (await self._unary(self._stub.CreateSession, request, timeout)).session

    async def list_sessions(
        self, *, server: str = "", tags: Iterable[str] = (), timeout: float | None = None
    ) -> list[types_pb2.Session]:
        """Sessions having any of ``tags`` (none: all), on ``server`` (empty: whole cluster)."""
        response = await self.list_sessions_response(server=server, tags=tags, timeout=timeout)
        return list(response.sessions)

    async def list_sessions_response(
        self, *, server: str = "", tags: Iterable[str] = (), timeout: float | None = None
    ) -> hub_pb2.ListSessionsResponse:
        """Like :meth:`list_sessions`, plus ``missing_servers``: those not HEALTHY, not listed."""
        request = hub_pb2.ListSessionsRequest(server=server, tags=list(tags))
        return await self._unary(self._stub.ListSessions, request, timeout)

    async def get_session(
        self, name: str, *, server: str = "", timeout: float | None = None
    ) -> types_pb2.Session:
        """One session by name."""
        request = hub_pb2.GetSessionRequest(server=server, name=name)
        return (await self._unary(self._stub.GetSession, request, timeout)).session

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
        """Rename (``new_name`` non-empty) and retag a session, all or nothing."""
        request = hub_pb2.UpdateSessionRequest(
            server=server,
            name=name,
            new_name=new_name,
            add_tags=list(add_tags),
            remove_tags=list(remove_tags),
        )
        return (await self._unary(self._stub.UpdateSession, request, timeout)).session

    async def kill_session(
        self, name: str, *, server: str = "", timeout: float | None = None
    ) -> None:
        """End the session's process group and forget the session."""
        request = hub_pb2.KillSessionRequest(server=server, name=name)
        await self._unary(self._stub.KillSession, request, timeout)

    async def send_input(
        self, name: str, data: str | bytes, *, server: str = "", timeout: float | None = None
    ) -> hub_pb2.SendInputResponse:
        """Write ``data`` (a ``str`` is sent as UTF-8) to the PTY.

        The response's ``generation`` counts this input; pass it to
        :meth:`await_idle` as ``last_generation`` to wait for its output.
        """
        request = hub_pb2.SendInputRequest(server=server, name=name, data=as_bytes(data))
        return await self._unary(self._stub.SendInput, request, timeout)

    async def get_screen(
        self,
        name: str,
        *,
        server: str = "",
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> types_pb2.Screen:
        """The visible screen, as plain lines or styled spans."""
        request = hub_pb2.GetScreenRequest(server=server, name=name, format=screen_format(format))
        return (await self._unary(self._stub.GetScreen, request, timeout)).screen

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
        """A page of all lines (scrollback then screen, oldest first); ``limit`` 0: default."""
        request = hub_pb2.GetScrollbackRequest(
            server=server, name=name, offset=offset, limit=limit, format=screen_format(format)
        )
        return await self._unary(self._stub.GetScrollback, request, timeout)

    async def resize_session(
        self, name: str, rows: int, cols: int, *, server: str = "", timeout: float | None = None
    ) -> types_pb2.Session:
        """Change the PTY size."""
        request = hub_pb2.ResizeSessionRequest(server=server, name=name, rows=rows, cols=cols)
        return (await self._unary(self._stub.ResizeSession, request, timeout)).session

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
        mode: IdleModeArg = "quiet",
        timeout: float | None = None,
    ) -> types_pb2.Idle:
        """Wait until the session has been quiet for ``timeout_ms`` (``mode``
        ``"quiet"``), or until its foreground program waits for input
        (``"ready"``; ``timeout_ms`` is then the quiet time used only where
        the server cannot tell, and ``Idle.ready_unknown`` says so).

        With ``last_generation`` equal to the current generation, first wait
        for new activity; ``fresh`` always waits a full ``timeout_ms``.
        ``max_wait_ms`` 0 means the server's default (30 s); past it the call
        fails with ``DEADLINE_EXCEEDED``.
        """
        # Leaving the optional field unset (None rather than 0) is what tells
        # the server there is no previous generation to wait past.
        request = hub_pb2.AwaitIdleRequest(
            server=server,
            name=name,
            timeout_ms=timeout_ms,
            max_wait_ms=max_wait_ms,
            last_generation=last_generation,
            fresh=fresh,
            format=screen_format(format),
            mode=idle_mode(mode),
        )
        return (await self._unary(self._stub.AwaitIdle, request, timeout)).idle

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
        exclude: Iterable[ExclusionArg] = (),
        fresh: bool = False,
        format: ScreenFormatArg = "plain",
        mode: IdleModeArg = "quiet",
        timeout: float | None = None,
    ) -> AsyncIdleStream:
        """Stream sessions in scope (``tags``: any of; ``server``: filter) as they
        settle (``mode``: as in :meth:`await_idle`).

        Each session in ``exclude`` (the ``Idle`` results already collected, or
        ``(server, session, generation)`` tuples) is skipped until its
        generation moves past the one given; an exited one is skipped for good.
        ``last_session`` on ``last_server`` at ``last_generation`` is one more.
        Use it as a context manager, or call ``cancel()``, to end the stream
        early. To collect N sessions, read N results from one stream rather
        than calling :meth:`race_first` N times.
        """
        request = hub_pb2.RaceIdleRequest(
            tags=list(tags),
            server=server,
            timeout_ms=timeout_ms,
            max_wait_ms=max_wait_ms,
            last_session=last_session,
            last_server=last_server,
            last_generation=last_generation,
            exclude=exclusions(exclude),
            fresh=fresh,
            format=screen_format(format),
            mode=idle_mode(mode),
        )
        call = self._stub.RaceIdle(
            request, timeout=self._deadline(timeout), metadata=self._metadata
        )
        return AsyncIdleStream(call)

    def watch_sessions(
        self,
        *,
        tags: Iterable[str] = (),
        server: str = "",
        timeout: float | None = None,
    ) -> AsyncWatchStream:
        """Stream the sessions (``tags``: any of) and servers in scope
        (``server``: one server; default the whole cluster): a snapshot, then
        one event per change. A watcher that falls behind gets a new snapshot,
        each event of which has ``resync`` set. Use it as a context manager,
        or call ``cancel()``, to end the stream.
        """
        request = hub_pb2.WatchSessionsRequest(tags=list(tags), server=server)
        call = self._stub.WatchSessions(
            request, timeout=self._deadline(timeout), metadata=self._metadata
        )
        return AsyncWatchStream(call)

    # The short name the CLI's `wsh watch` goes by.
    watch = watch_sessions

    def attach(
        self,
        name: str,
        *,
        server: str = "",
        read_only: bool = False,
        rows: int = 0,
        cols: int = 0,
        format: ScreenFormatArg = "plain",
        timeout: float | None = None,
    ) -> AsyncAttachment:
        """Watch and drive session ``name`` live: see :class:`AsyncAttachment`.

        ``rows`` and ``cols`` (0: keep) resize the session first, unless
        ``read_only`` (then input is refused). ``format`` is that of the
        snapshots' ``screen``. ``timeout`` bounds the whole stream.
        """
        start = hub_pb2.AttachStart(
            name=name,
            server=server,
            mode=hub_pb2.ATTACH_MODE_READ_ONLY if read_only else hub_pb2.ATTACH_MODE_READ_WRITE,
            format=screen_format(format),
        )
        if rows or cols:
            start.size.rows, start.size.cols = rows, cols
        request = hub_pb2.AttachRequest(start=start)
        return AsyncAttachment(
            AttachCall(self._stub, request, self._deadline(timeout), self._metadata)
        )

    async def race_first(self, **options: Unpack[RaceOptions]) -> types_pb2.Idle:
        """The first session to settle (see :meth:`race_idle`); the stream is then
        cancelled. A loop collecting sessions passes those it has as ``exclude``,
        so each call returns a new one."""
        async with self.race_idle(**options) as stream:
            async for idle in stream:
                return idle
        raise empty_race()

    async def run(
        self,
        session: str,
        text: str | bytes,
        timeout_ms: int = DEFAULT_IDLE_MS,
        *,
        server: str = "",
        max_wait_ms: int = 0,
        format: ScreenFormatArg = "plain",
        mode: IdleModeArg | None = None,
        timeout: float | None = None,
    ) -> types_pb2.Idle:
        """Send ``text`` then wait until the output it caused has settled.

        The wait starts from the generation the input produced, so the result
        never shows the screen from before the input. ``mode`` None picks
        ``"ready"`` when the session's foreground program waits for input
        before the text is sent (a shell at its prompt, a REPL: the answer is
        complete when it waits again), else ``"quiet"``; it costs one
        ``get_session`` call.
        """
        if mode is None:
            found = await self.get_session(session, server=server, timeout=timeout)
            mode = "ready" if found.ready else "quiet"
        sent = await self.send_input(session, text, server=server, timeout=timeout)
        return await self.await_idle(
            session,
            server=server,
            timeout_ms=timeout_ms,
            max_wait_ms=max_wait_ms,
            last_generation=sent.generation,
            format=format,
            mode=mode,
            timeout=timeout,
        )

    async def list_servers(self, *, timeout: float | None = None) -> list[hub_pb2.Server]:
        """This server first, then every registered backend."""
        request = hub_pb2.ListServersRequest()
        return list((await self._unary(self._stub.ListServers, request, timeout)).servers)

    async def get_server(self, hostname: str, *, timeout: float | None = None) -> hub_pb2.Server:
        """One server of the cluster by hostname."""
        request = hub_pb2.GetServerRequest(hostname=hostname)
        return (await self._unary(self._stub.GetServer, request, timeout)).server

    async def add_server(
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
        request = hub_pb2.AddServerRequest(
            address=address, token=token, wait=wait, wait_timeout_ms=wait_timeout_ms
        )
        return (await self._unary(self._stub.AddServer, request, timeout)).server

    async def remove_server(
        self, hostname: str = "", *, address: str = "", timeout: float | None = None
    ) -> None:
        """Deregister a backend by hostname, or by address while its hostname is unknown."""
        request = hub_pb2.RemoveServerRequest(hostname=hostname, address=address)
        await self._unary(self._stub.RemoveServer, request, timeout)

    async def reload_config(self, *, timeout: float | None = None) -> hub_pb2.ReloadConfigResponse:
        """Reconcile the registered backends with the server's config file."""
        request = hub_pb2.ReloadConfigRequest()
        return await self._unary(self._stub.ReloadConfig, request, timeout)

    async def get_server_info(
        self, *, timeout: float | None = None
    ) -> hub_pb2.GetServerInfoResponse:
        """Identity of the server this client talks to."""
        request = hub_pb2.GetServerInfoRequest()
        return await self._unary(self._stub.GetServerInfo, request, timeout)
