"""HubService: translate requests to domain calls on this server or forward them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from wsh import defaults
from wsh.api import convert, remote
from wsh.api.limits import StreamLimits
from wsh.api.race import ClusterRace
from wsh.api.render import InventoryRenderer, ScreenRenderer
from wsh.api.status import streaming, unary
from wsh.errors import Kind, WshError, invalid, shorten
from wsh.federation import writes
from wsh.federation.manager import Federation
from wsh.federation.registry import Backend, Health
from wsh.identity import ServerIdentity
from wsh.names import check_session_name, check_tags
from wsh.sessions.manager import SessionManager
from wsh.sessions.session import Session
from wsh.stats import process_stats, task_count
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

_HEALTH_TO_PB = {
    Health.HEALTHY: hub_pb2.SERVER_HEALTH_HEALTHY,
    Health.CONNECTING: hub_pb2.SERVER_HEALTH_CONNECTING,
    Health.UNAVAILABLE: hub_pb2.SERVER_HEALTH_UNAVAILABLE,
    Health.REJECTED: hub_pb2.SERVER_HEALTH_REJECTED,
}

Ctx = grpc.aio.ServicerContext[Any, Any]


def wait_bounds(timeout_ms: int, max_wait_ms: int) -> tuple[int, float]:
    """Quiet time in ms and overall bound in seconds, with the contract's caps."""
    timeout = min(timeout_ms, defaults.MAX_WAIT_CAP_MS)
    max_wait = min(max_wait_ms or defaults.MAX_WAIT_DEFAULT_MS, defaults.MAX_WAIT_CAP_MS)
    return timeout, max_wait / 1000


def idle_timeout_error(what: str, max_wait_s: float) -> WshError:
    return WshError(
        Kind.DEADLINE_EXCEEDED,
        "IDLE_TIMEOUT",
        f"{what} did not become idle within max_wait_ms={int(max_wait_s * 1000)}.",
    )


def check_format(value: int) -> None:
    """Unknown enum values are refused, not read as the default."""
    if value not in types_pb2.ScreenFormat.values():
        raise invalid(
            "INVALID_FORMAT",
            f"Unknown screen format {value}; use SCREEN_FORMAT_PLAIN or SCREEN_FORMAT_STYLED.",
            format=str(value),
        )


class HubServicer(hub_pb2_grpc.HubServiceServicer):
    """The HubService of one server: local sessions, or forwarded to a backend."""

    def __init__(
        self,
        identity: ServerIdentity,
        sessions: SessionManager,
        federation: Federation,
        limits: StreamLimits,
        *,
        strict_routing: bool = False,
    ) -> None:
        self._identity = identity
        self._strict_routing = strict_routing
        self._limits = limits
        self._sessions = sessions
        self._federation = federation
        self._registry = federation.registry
        self._render = ScreenRenderer()
        self._inventory = InventoryRenderer()

    @property
    def hostname(self) -> str:
        return self._identity.hostname

    def _session_pb(self, session: Session) -> types_pb2.Session:
        return convert.session_to_pb(self._sessions.info(session))

    def _route(self, server: str) -> Backend | None:
        """Where a call for ``server`` goes: None is this server (empty ``server`` too)."""
        return self._registry.route(server)

    def _target(self, server: str, name: str) -> Backend | None:
        """Where a call naming the existing session ``name`` goes; None is this server.

        With no ``server``, a session of that name here wins; otherwise the
        one backend whose inventory holds the name (see ``route_name``). In
        strict mode an empty ``server`` means this server only.
        """
        check_session_name(name)
        if server or self._strict_routing or self._sessions.has(name):
            return self._route(server)
        return self._registry.route_name(name)

    def _skip_server(self, name: str) -> str:
        """The server of a race's ``last_session`` given without ``last_server``,
        resolved like a call naming the session; empty when no server holds it."""
        try:
            return self._server_of(self._target("", name))
        except WshError as err:
            if err.reason == "SESSION_NOT_FOUND":
                return ""
            if err.reason == "SERVER_UNAVAILABLE":
                return err.metadata["server"]
            raise

    def _server_of(self, backend: Backend | None) -> str:
        return self.hostname if backend is None else backend.hostname

    async def _forward(self, backend: Backend, method: str, request: Any, context: Ctx) -> Any:
        return await remote.call(self._federation.link(backend), method, request, context)

    async def _forward_session(
        self,
        backend: Backend,
        method: str,
        request: Any,
        context: Ctx,
        name: str,
        *,
        previous_name: str = "",
    ) -> types_pb2.Session:
        """Forward a call that changes one session and is answered with it, which
        must be ``name`` on ``backend``; returns once the hub's inventory shows it."""
        resp = await self._forward(backend, method, request, context)
        session_pb = remote.clean_session(resp.session, backend.hostname, name)
        await writes.observe(
            self._registry,
            backend,
            session_pb.name,
            convert.session_from_pb(session_pb),
            previous_name,
        )
        return session_pb

    # -- sessions -------------------------------------------------------------

    @unary
    async def CreateSession(
        self, request: hub_pb2.CreateSessionRequest, context: Ctx
    ) -> hub_pb2.CreateSessionResponse:
        backend = self._route(request.server)
        if backend is not None:
            session_pb = await self._forward_session(
                backend, "CreateSession", request, context, request.name
            )
            return hub_pb2.CreateSessionResponse(session=session_pb)
        session = self._sessions.create(
            name=request.name,
            command=request.command,
            rows=request.rows,
            cols=request.cols,
            cwd=request.cwd,
            env=dict(request.env),
            tags=list(request.tags),
        )
        return hub_pb2.CreateSessionResponse(session=self._session_pb(session))

    @unary
    async def ListSessions(
        self, request: hub_pb2.ListSessionsRequest, context: Ctx
    ) -> hub_pb2.ListSessionsResponse:
        # Backends' sessions come from their Link inventories, which every
        # change and every heartbeat keep current, so listing the cluster
        # costs no call to any backend.
        tags = frozenset(check_tags(list(request.tags)))
        backend = self._route(request.server)
        if backend is not None:
            backends = [backend]
            sessions = []
        else:
            backends = [] if request.server else list(self._registry)
            sessions = [self._session_pb(s) for s in self._sessions.matching(tags)]
        missing = []
        for remote_backend in backends:
            if remote_backend.healthy:
                sessions.extend(self._inventory.sessions(remote_backend, tags))
            else:
                missing.append(self._backend_server(remote_backend))
        return hub_pb2.ListSessionsResponse(sessions=sessions, missing_servers=missing)

    @unary
    async def GetSession(
        self, request: hub_pb2.GetSessionRequest, context: Ctx
    ) -> hub_pb2.GetSessionResponse:
        backend = self._target(request.server, request.name)
        if backend is not None:
            resp = await self._forward(backend, "GetSession", request, context)
            session_pb = remote.clean_session(resp.session, backend.hostname, request.name)
            return hub_pb2.GetSessionResponse(session=session_pb)
        return hub_pb2.GetSessionResponse(
            session=self._session_pb(self._sessions.get(request.name))
        )

    @unary
    async def UpdateSession(
        self, request: hub_pb2.UpdateSessionRequest, context: Ctx
    ) -> hub_pb2.UpdateSessionResponse:
        backend = self._target(request.server, request.name)
        if backend is not None:
            session_pb = await self._forward_session(
                backend,
                "UpdateSession",
                request,
                context,
                request.new_name or request.name,
                previous_name=request.name,
            )
            return hub_pb2.UpdateSessionResponse(session=session_pb)
        session = self._sessions.update(
            request.name,
            new_name=request.new_name,
            add_tags=list(request.add_tags),
            remove_tags=list(request.remove_tags),
        )
        return hub_pb2.UpdateSessionResponse(session=self._session_pb(session))

    @unary
    async def KillSession(
        self, request: hub_pb2.KillSessionRequest, context: Ctx
    ) -> hub_pb2.KillSessionResponse:
        backend = self._target(request.server, request.name)
        if backend is not None:
            await self._forward(backend, "KillSession", request, context)
            await writes.observe(self._registry, backend, request.name, None)
        else:
            await self._sessions.kill(request.name)
        return hub_pb2.KillSessionResponse(server=self._server_of(backend))

    @unary
    async def SendInput(
        self, request: hub_pb2.SendInputRequest, context: Ctx
    ) -> hub_pb2.SendInputResponse:
        if len(request.data) > defaults.MAX_INPUT_BYTES:
            raise invalid(
                "INPUT_TOO_LARGE",
                f"Input of {len(request.data)} bytes exceeds the limit of "
                f"{defaults.MAX_INPUT_BYTES} bytes; send it in parts.",
                limit=str(defaults.MAX_INPUT_BYTES),
            )
        backend = self._target(request.server, request.name)
        if backend is not None:
            resp = await self._forward(backend, "SendInput", request, context)
            return hub_pb2.SendInputResponse(generation=resp.generation, server=backend.hostname)
        generation = self._sessions.get(request.name).send(request.data)
        return hub_pb2.SendInputResponse(generation=generation, server=self.hostname)

    @unary
    async def GetScreen(
        self, request: hub_pb2.GetScreenRequest, context: Ctx
    ) -> hub_pb2.GetScreenResponse:
        check_format(request.format)
        backend = self._target(request.server, request.name)
        if backend is not None:
            resp = await self._forward(backend, "GetScreen", request, context)
            screen = remote.clean_screen(resp.screen, backend.hostname)
            return hub_pb2.GetScreenResponse(screen=screen, server=backend.hostname)
        session = self._sessions.get(request.name)
        screen = self._render.screen(
            session, convert.is_styled(request.format), session.activity.generation
        )
        return hub_pb2.GetScreenResponse(screen=screen, server=self.hostname)

    @unary
    async def GetScrollback(
        self, request: hub_pb2.GetScrollbackRequest, context: Ctx
    ) -> hub_pb2.GetScrollbackResponse:
        check_format(request.format)
        backend = self._target(request.server, request.name)
        if backend is not None:
            resp = await self._forward(backend, "GetScrollback", request, context)
            remote.clean_scrollback(resp, backend.hostname)
            resp.server = backend.hostname
            return resp  # type: ignore[no-any-return]
        limit = min(request.limit or defaults.SCROLLBACK_PAGE_DEFAULT, defaults.SCROLLBACK_PAGE_MAX)
        styled = convert.is_styled(request.format)
        page = self._sessions.get(request.name).scrollback(request.offset, limit, styled)
        return hub_pb2.GetScrollbackResponse(
            lines=page.lines,
            styled_lines=convert.styled_lines_to_pb(page.styled_lines) if page.styled_lines else (),
            total_lines=page.total_lines,
            offset=page.offset,
            server=self.hostname,
        )

    @unary
    async def ResizeSession(
        self, request: hub_pb2.ResizeSessionRequest, context: Ctx
    ) -> hub_pb2.ResizeSessionResponse:
        backend = self._target(request.server, request.name)
        if backend is not None:
            session_pb = await self._forward_session(
                backend, "ResizeSession", request, context, request.name
            )
            return hub_pb2.ResizeSessionResponse(session=session_pb)
        session = self._sessions.resize(request.name, request.rows, request.cols)
        return hub_pb2.ResizeSessionResponse(session=self._session_pb(session))

    @unary
    async def AwaitIdle(
        self, request: hub_pb2.AwaitIdleRequest, context: Ctx
    ) -> hub_pb2.AwaitIdleResponse:
        check_format(request.format)
        backend = self._target(request.server, request.name)
        if backend is not None:
            idle = await self._forward_wait(backend, request, context)
            return hub_pb2.AwaitIdleResponse(idle=idle)
        session = self._sessions.get(request.name)
        timeout_ms, max_wait_s = wait_bounds(request.timeout_ms, request.max_wait_ms)
        last = request.last_generation if request.HasField("last_generation") else None
        try:
            with self._limits.hold(context.peer(), "AwaitIdle"):
                async with asyncio.timeout(max_wait_s):
                    generation = await session.wait_idle(timeout_ms, last, request.fresh)
        except TimeoutError:
            raise idle_timeout_error(f"Session {session.name!r}", max_wait_s) from None
        idle = self._render.idle(
            session, self.hostname, generation, convert.is_styled(request.format)
        )
        return hub_pb2.AwaitIdleResponse(idle=idle)

    async def _forward_wait(
        self, backend: Backend, request: hub_pb2.AwaitIdleRequest, context: Ctx
    ) -> types_pb2.Idle:
        """Forward an AwaitIdle, asking again when the call fails on the way.

        A proxy between hub and backend may reset a call that carries no
        data for a while (Envoy's stream_idle_timeout); while the Link says
        the backend is healthy, the wait goes on with what is left of
        max_wait_ms, as if it had not been cut.
        """
        timeout_ms, max_wait_s = wait_bounds(request.timeout_ms, request.max_wait_ms)
        started = time.monotonic()
        failures = 0
        while True:
            try:
                resp = await self._forward(backend, "AwaitIdle", request, context)
                return remote.clean_idle(resp.idle, backend.hostname, request.name)
            except WshError as err:
                if err.reason != "SERVER_UNAVAILABLE" or not backend.healthy:
                    raise
                failures += 1
            await asyncio.sleep(remote.retry_delay(failures))
            elapsed = time.monotonic() - started
            if elapsed >= max_wait_s:
                raise idle_timeout_error(f"Session {request.name!r}", max_wait_s)
            request.max_wait_ms = max(1, int((max_wait_s - elapsed) * 1000))
            # The silence already observed counts towards a fresh window.
            request.fresh = request.fresh and elapsed < timeout_ms / 1000

    @streaming
    async def RaceIdle(
        self, request: hub_pb2.RaceIdleRequest, context: Ctx
    ) -> AsyncIterator[hub_pb2.RaceIdleResponse]:
        check_format(request.format)
        check_tags(list(request.tags))
        if request.last_session:
            check_session_name(request.last_session)
            if not request.last_server:
                request.last_server = self._skip_server(request.last_session)
        backend = self._route(request.server)
        timeout_ms, max_wait_s = wait_bounds(request.timeout_ms, request.max_wait_ms)
        styled = convert.is_styled(request.format)
        race = ClusterRace(
            request,
            timeout_ms=timeout_ms,
            sessions=None if backend is not None else self._sessions,
            render=lambda session, generation: self._render.idle(
                session, self.hostname, generation, styled
            ),
            federation=self._federation,
            # Empty server: the whole cluster; this server's name: only here.
            backends=[backend] if backend is not None else (None if not request.server else []),
        )
        try:
            with self._limits.hold(context.peer(), "RaceIdle"):
                if race.start() == 0:
                    raise WshError(
                        Kind.NOT_FOUND,
                        "NO_SESSIONS",
                        "No session in scope"
                        + (
                            f" with tags {shorten(repr(sorted(request.tags)))}"
                            if request.tags
                            else ""
                        )
                        + "; create one first.",
                    )
                timeout = idle_timeout_error("No session in scope", max_wait_s)
                async for idle in race.stream(max_wait_s, timeout):
                    yield hub_pb2.RaceIdleResponse(idle=idle)
        finally:
            await race.close()

    # -- servers --------------------------------------------------------------

    def _self_server(self) -> hub_pb2.Server:
        return hub_pb2.Server(
            hostname=self.hostname,
            address="local",
            health=hub_pb2.SERVER_HEALTH_HEALTHY,
            role=hub_pb2.SERVER_ROLE_LOCAL,
            session_count=len(self._sessions),
            server_id=self._identity.server_id,
        )

    @staticmethod
    def _backend_server(backend: Backend) -> hub_pb2.Server:
        return hub_pb2.Server(
            hostname=backend.hostname,
            address=backend.address.url,
            health=_HEALTH_TO_PB[backend.health],
            role=hub_pb2.SERVER_ROLE_MEMBER,
            # A down backend's last inventory only routes names; it is not counted.
            session_count=len(backend.sessions) if backend.healthy else 0,
            latency_ms=backend.latency_ms if backend.healthy else 0.0,
            last_error=backend.last_error,
            server_id=backend.server_id,
        )

    @unary
    async def ListServers(
        self, request: hub_pb2.ListServersRequest, context: Ctx
    ) -> hub_pb2.ListServersResponse:
        return hub_pb2.ListServersResponse(
            servers=[self._self_server(), *(self._backend_server(b) for b in self._registry)]
        )

    @unary
    async def GetServer(
        self, request: hub_pb2.GetServerRequest, context: Ctx
    ) -> hub_pb2.GetServerResponse:
        if not request.hostname or request.hostname == self.hostname:
            return hub_pb2.GetServerResponse(server=self._self_server())
        backend = self._registry.find(request.hostname)
        return hub_pb2.GetServerResponse(server=self._backend_server(backend))

    @unary
    async def AddServer(
        self, request: hub_pb2.AddServerRequest, context: Ctx
    ) -> hub_pb2.AddServerResponse:
        backend = await self._federation.add_server(
            request.address,
            request.token if request.HasField("token") else None,
            wait=request.wait,
            wait_timeout_s=request.wait_timeout_ms / 1000,
        )
        return hub_pb2.AddServerResponse(server=self._backend_server(backend))

    @unary
    async def RemoveServer(
        self, request: hub_pb2.RemoveServerRequest, context: Ctx
    ) -> hub_pb2.RemoveServerResponse:
        await self._federation.remove_server(request.hostname, request.address)
        return hub_pb2.RemoveServerResponse()

    @unary
    async def ReloadConfig(
        self, request: hub_pb2.ReloadConfigRequest, context: Ctx
    ) -> hub_pb2.ReloadConfigResponse:
        result = await self._federation.reload()
        return hub_pb2.ReloadConfigResponse(
            added=result.added,
            removed=result.removed,
            updated=result.updated,
            warnings=result.warnings,
        )

    @unary
    async def GetServerInfo(
        self, request: hub_pb2.GetServerInfoRequest, context: Ctx
    ) -> hub_pb2.GetServerInfoResponse:
        response = hub_pb2.GetServerInfoResponse(
            hostname=self.hostname,
            server_id=self._identity.server_id,
            version=self._identity.version,
            started_at=convert.timestamp(self._identity.started_at),
        )
        response.uptime.FromNanoseconds(int((time.time() - self._identity.started_at) * 1e9))
        proc = await asyncio.to_thread(process_stats)
        response.stats.CopyFrom(
            hub_pb2.ServerStats(
                sessions=len(self._sessions),
                open_fds=proc.open_fds,
                child_processes=proc.child_processes,
                tasks=task_count(),
                rss_bytes=proc.rss_bytes,
                links=self._limits.total("Link"),
                races=self._limits.total("RaceIdle"),
            )
        )
        return response
