"""HubService: translate requests to domain calls on this server or forward them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from wsh import convert, defaults
from wsh.api import attach, remote, routing
from wsh.api.limits import StreamLimits
from wsh.api.race import ClusterRace, RaceScope
from wsh.api.render import InventoryRenderer, ScreenRenderer
from wsh.api.routing import idle_timeout_error, routed, wait_bounds
from wsh.api.status import Ctx, streaming, unary
from wsh.api.watch import Watcher, Watches
from wsh.errors import Kind, WshError, invalid, shorten
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
        local_sessions: bool = True,
    ) -> None:
        self._identity = identity
        self._strict_routing = strict_routing
        self._local_sessions = local_sessions
        self._limits = limits
        self._sessions = sessions
        self._federation = federation
        self.registry = federation.registry
        self._render = ScreenRenderer()
        self._races: set[ClusterRace] = set()
        self._relays: set[attach.Relay] = set()
        self._inventory = InventoryRenderer()
        self._watches = Watches(
            identity.hostname,
            sessions,
            self.registry,
            self._self_server,
            self._backend_server,
        )

    @property
    def hostname(self) -> str:
        return self._identity.hostname

    def _session_pb(self, session: Session) -> types_pb2.Session:
        return convert.session_to_pb(self._sessions.info(session))

    def route(self, server: str) -> Backend | None:
        """Where a call for ``server`` goes: None is this server (empty ``server`` too)."""
        return self.registry.route(server)

    def target(self, server: str, name: str) -> Backend | None:
        """Where a call naming the existing session ``name`` goes; None is this server.

        With no ``server``, a session of that name here wins; otherwise the
        one backend whose inventory holds the name (see ``route_name``). In
        strict mode an empty ``server`` means this server only.
        """
        check_session_name(name)
        if server or self._strict_routing or self._sessions.has(name):
            return self.route(server)
        return self.registry.route_name(name)

    async def forward(self, backend: Backend, method: str, request: Any, context: Ctx) -> Any:
        return await remote.call(self._federation.link(backend), method, request, context)

    def _skip_server(self, name: str) -> str:
        """The server of a race's ``last_session`` given without ``last_server``,
        resolved like a call naming the session; empty when no server holds it."""
        try:
            backend = self.target("", name)
        except WshError as err:
            if err.reason == "SESSION_NOT_FOUND":
                return ""
            if err.reason == "SERVER_UNAVAILABLE":
                return err.metadata["server"]
            raise
        return self.hostname if backend is None else backend.hostname

    # -- sessions: each method is the local path; @routed says the rest ---------

    @routed(routing.changed_session(lambda r: r.name), by_name=False)
    async def CreateSession(
        self, request: hub_pb2.CreateSessionRequest, context: Ctx
    ) -> hub_pb2.CreateSessionResponse:
        if not self._local_sessions:
            raise self._server_required()
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

    def _server_required(self) -> WshError:
        """A create on a hub that keeps no sessions: a session here would be
        invisible to the other hubs that share its backends (docs/HUBS.md)."""
        servers = shorten(", ".join(b.hostname for b in self.registry.healthy()) or "none", 512)
        return WshError(
            Kind.FAILED_PRECONDITION,
            "SERVER_REQUIRED",
            f"This hub runs no sessions of its own (--no-local-sessions); pass `server` "
            f"to create the session on a backend (healthy now: {servers}).",
            {"servers": servers},
        )

    @unary
    async def ListSessions(
        self, request: hub_pb2.ListSessionsRequest, context: Ctx
    ) -> hub_pb2.ListSessionsResponse:
        # Backends' sessions come from their Link inventories, which every
        # change and every heartbeat keep current, so listing the cluster
        # costs no call to any backend.
        tags = frozenset(check_tags(list(request.tags)))
        backend = self.route(request.server)
        if backend is not None:
            backends = [backend]
            sessions = []
        else:
            backends = [] if request.server else list(self.registry)
            sessions = [self._session_pb(s) for s in self._sessions.matching(tags)]
        missing = []
        for remote_backend in backends:
            if remote_backend.healthy:
                sessions.extend(self._inventory.sessions(remote_backend, tags))
            else:
                missing.append(self._backend_server(remote_backend))
        return hub_pb2.ListSessionsResponse(sessions=sessions, missing_servers=missing)

    @routed(routing.session_answer)
    async def GetSession(
        self, request: hub_pb2.GetSessionRequest, context: Ctx
    ) -> hub_pb2.GetSessionResponse:
        return hub_pb2.GetSessionResponse(
            session=self._session_pb(self._sessions.get(request.name))
        )

    @routed(routing.changed_session(lambda r: r.new_name or r.name, lambda r: r.name))
    async def UpdateSession(
        self, request: hub_pb2.UpdateSessionRequest, context: Ctx
    ) -> hub_pb2.UpdateSessionResponse:
        session = self._sessions.update(
            request.name,
            new_name=request.new_name,
            add_tags=list(request.add_tags),
            remove_tags=list(request.remove_tags),
        )
        return hub_pb2.UpdateSessionResponse(session=self._session_pb(session))

    @routed(routing.killed)
    async def KillSession(
        self, request: hub_pb2.KillSessionRequest, context: Ctx
    ) -> hub_pb2.KillSessionResponse:
        await self._sessions.kill(request.name)
        return hub_pb2.KillSessionResponse(server=self.hostname)

    @routed(routing.input_answer, check=routing.check_input)
    async def SendInput(
        self, request: hub_pb2.SendInputRequest, context: Ctx
    ) -> hub_pb2.SendInputResponse:
        generation = self._sessions.get(request.name).send(routing.input_bytes(request))
        return hub_pb2.SendInputResponse(generation=generation, server=self.hostname)

    @routed(routing.screen_answer, check=routing.check_format)
    async def GetScreen(
        self, request: hub_pb2.GetScreenRequest, context: Ctx
    ) -> hub_pb2.GetScreenResponse:
        session = self._sessions.get(request.name)
        screen = self._render.screen(
            session, convert.is_styled(request.format), session.activity.generation
        )
        return hub_pb2.GetScreenResponse(screen=screen, server=self.hostname)

    @routed(routing.scrollback_answer, check=routing.check_format)
    async def GetScrollback(
        self, request: hub_pb2.GetScrollbackRequest, context: Ctx
    ) -> hub_pb2.GetScrollbackResponse:
        limit = min(request.limit or defaults.SCROLLBACK_PAGE_DEFAULT, defaults.SCROLLBACK_PAGE_MAX)
        styled = convert.is_styled(request.format)
        page = self._sessions.get(request.name).scrollback(request.offset, limit, styled)
        return hub_pb2.GetScrollbackResponse(
            lines=page.lines,
            styled_lines=convert.styled_lines_to_pb(page.styled_lines) if page.styled_lines else (),
            total_lines=page.total_lines,
            offset=page.offset,
            server=self.hostname,
            truncated=page.truncated,
        )

    @routed(routing.changed_session(lambda r: r.name))
    async def ResizeSession(
        self, request: hub_pb2.ResizeSessionRequest, context: Ctx
    ) -> hub_pb2.ResizeSessionResponse:
        session = self._sessions.resize(request.name, request.rows, request.cols)
        return hub_pb2.ResizeSessionResponse(session=self._session_pb(session))

    @routed(routing.idle_answer, check=routing.check_wait, forward=routing.forward_wait)
    async def AwaitIdle(
        self, request: hub_pb2.AwaitIdleRequest, context: Ctx
    ) -> hub_pb2.AwaitIdleResponse:
        session = self._sessions.get(request.name)
        timeout_ms, max_wait_s = wait_bounds(request.timeout_ms, request.max_wait_ms)
        last = request.last_generation if request.HasField("last_generation") else None
        try:
            with self._limits.hold(context.peer(), "AwaitIdle"):
                async with asyncio.timeout(max_wait_s):
                    generation, foreground = await session.settle(
                        convert.is_ready(request.mode), timeout_ms, last, request.fresh
                    )
        except TimeoutError:
            raise idle_timeout_error(max_wait_s, session.name) from None
        idle = self._render.idle(
            session, self.hostname, generation, convert.is_styled(request.format), foreground
        )
        return hub_pb2.AwaitIdleResponse(idle=idle)

    @streaming
    async def RaceIdle(
        self, request: hub_pb2.RaceIdleRequest, context: Ctx
    ) -> AsyncIterator[hub_pb2.RaceIdleResponse]:
        routing.check_wait(request)
        check_tags(list(request.tags))
        skips = self._race_skips(request)
        backend = self.route(request.server)
        timeout_ms, max_wait_s = wait_bounds(request.timeout_ms, request.max_wait_ms)
        styled = convert.is_styled(request.format)
        race = ClusterRace(
            request,
            timeout_ms=timeout_ms,
            sessions=self._sessions,
            render=lambda session, generation, foreground: self._render.settle(
                session, self.hostname, generation, styled, foreground
            ),
            federation=self._federation,
            scope=(
                RaceScope.cluster()
                if not request.server
                else RaceScope.only_here()
                if backend is None
                else RaceScope.on(backend)
            ),
            skips=skips,
        )
        self._races.add(race)
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
                timeout = idle_timeout_error(max_wait_s)
                sent = 0
                async for response in race.stream(max_wait_s, timeout):
                    yield response
                    sent += 1
                    if sent == request.max_results:
                        return
        finally:
            self._races.discard(race)
            await race.close()

    def _race_skips(self, request: hub_pb2.RaceIdleRequest) -> dict[str, dict[str, int]]:
        """The sessions a race skips, by server: ``last_session`` and ``exclude``."""
        if len(request.exclude) > defaults.MAX_RACE_EXCLUSIONS:
            raise invalid(
                "TOO_MANY_EXCLUSIONS",
                f"A race takes at most {defaults.MAX_RACE_EXCLUSIONS} exclusions, "
                f"not {len(request.exclude)}.",
                limit=str(defaults.MAX_RACE_EXCLUSIONS),
            )
        skips: dict[str, dict[str, int]] = {}
        if request.last_session:
            check_session_name(request.last_session)
            if not request.last_server:
                request.last_server = self._skip_server(request.last_session)
            if request.HasField("last_generation"):
                skips.setdefault(request.last_server, {})[request.last_session] = (
                    request.last_generation
                )
        for excluded in request.exclude:
            check_session_name(excluded.session)
            server = excluded.server or self._skip_server(excluded.session)
            skips.setdefault(server, {})[excluded.session] = excluded.generation
        return skips

    def interrupt_races(self, error: WshError) -> None:
        """End every open RaceIdle, WatchSessions and relayed Attach stream with
        ``error`` (server shutdown); local Attach streams end with their
        sessions' waits."""
        for race in self._races:
            race.fail(error)
        self._watches.fail(error)
        for relay in self._relays:
            relay.interrupt(error)

    @streaming
    async def WatchSessions(
        self, request: hub_pb2.WatchSessionsRequest, context: Ctx
    ) -> AsyncIterator[hub_pb2.WatchSessionsResponse]:
        tags = frozenset(check_tags(list(request.tags)))
        if request.server and request.server != self.hostname:
            self.registry.find(request.server)  # SERVER_NOT_FOUND
        with self._limits.hold(context.peer(), "WatchSessions"):
            async for response in self._watches.stream(Watcher(request.server, tags)):
                yield response

    @streaming
    async def Attach(
        self, requests: AsyncIterator[hub_pb2.AttachRequest], context: Ctx
    ) -> AsyncIterator[hub_pb2.AttachResponse]:
        with self._limits.hold(context.peer(), "Attach"):
            start = await attach.first_request(requests)
            backend = self.target(start.server, start.name)
            if backend is None:
                stream = attach.local(
                    self._sessions,
                    self._sessions.get(start.name),
                    start,
                    requests,
                    self._render.screen,
                    self.hostname,
                )
                async for response in stream:
                    yield response
                return
            relay = attach.Relay(self._federation.link(backend))
            self._relays.add(relay)
            try:
                async for response in relay.run(start, requests, context):
                    yield response
            finally:
                self._relays.discard(relay)

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
            servers=[self._self_server(), *(self._backend_server(b) for b in self.registry)]
        )

    @unary
    async def GetServer(
        self, request: hub_pb2.GetServerRequest, context: Ctx
    ) -> hub_pb2.GetServerResponse:
        if not request.hostname or request.hostname == self.hostname:
            return hub_pb2.GetServerResponse(server=self._self_server())
        backend = self.registry.find(request.hostname)
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
                watches=self._limits.total("WatchSessions"),
                attaches=self._limits.total("Attach"),
            )
        )
        return response
