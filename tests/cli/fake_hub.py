"""A fake hub for the ``wsh`` command's unit tests: canned answers, recorded calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from wsh.cli import main
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

Ctx = grpc.ServicerContext


def error_info(code: grpc.StatusCode, reason: str, message: str) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="wsh.v1"))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    result: grpc.Status = rpc_status.to_status(status)
    return result


def session(name: str, **fields: Any) -> types_pb2.Session:
    return types_pb2.Session(name=name, server="hub", rows=24, cols=80, pid=100, **fields)


def idle_of(name: str, generation: int, lines: list[str]) -> types_pb2.Idle:
    screen = types_pb2.Screen(lines=lines, generation=generation)
    return types_pb2.Idle(session=name, server="hub", generation=generation, screen=screen)


@dataclass
class Hub(hub_pb2_grpc.HubServiceServicer):
    """Canned answers; ``calls`` records (method, request, metadata)."""

    calls: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    add_health: hub_pb2.ServerHealth = hub_pb2.SERVER_HEALTH_HEALTHY
    add_error: grpc.Status | None = None
    race_then_deadline: bool = False
    missing: list[hub_pb2.Server] = field(default_factory=list)
    registered: list[hub_pb2.Server] = field(default_factory=list)

    def _record(self, method: str, request: Any, context: Ctx) -> None:
        metadata = {k: str(v) for k, v in context.invocation_metadata()}
        self.calls.append((method, request, metadata))

    def requests(self, method: str) -> list[Any]:
        return [request for name, request, _ in self.calls if name == method]

    def CreateSession(
        self, request: hub_pb2.CreateSessionRequest, context: Ctx
    ) -> hub_pb2.CreateSessionResponse:
        self._record("CreateSession", request, context)
        created = session(request.name or "0", tags=sorted(request.tags), command="sh")
        return hub_pb2.CreateSessionResponse(session=created)

    def ListSessions(
        self, request: hub_pb2.ListSessionsRequest, context: Ctx
    ) -> hub_pb2.ListSessionsResponse:
        self._record("ListSessions", request, context)
        sessions = [
            session("build", tags=["ci"], state=types_pb2.SESSION_STATE_RUNNING),
            session("old-job", state=types_pb2.SESSION_STATE_EXITED, exit_code=1),
        ]
        return hub_pb2.ListSessionsResponse(sessions=sessions, missing_servers=self.missing)

    def GetSession(
        self, request: hub_pb2.GetSessionRequest, context: Ctx
    ) -> hub_pb2.GetSessionResponse:
        self._record("GetSession", request, context)
        if request.name == "build":
            # At its prompt, so `wsh run` waits READY by default.
            found = session("build", ready=True, foreground="bash")
            return hub_pb2.GetSessionResponse(session=found)
        status = error_info(
            grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", f"Session {request.name!r} not found."
        )
        context.abort_with_status(status)

    def KillSession(
        self, request: hub_pb2.KillSessionRequest, context: Ctx
    ) -> hub_pb2.KillSessionResponse:
        self._record("KillSession", request, context)
        return hub_pb2.KillSessionResponse()

    def SendInput(
        self, request: hub_pb2.SendInputRequest, context: Ctx
    ) -> hub_pb2.SendInputResponse:
        self._record("SendInput", request, context)
        return hub_pb2.SendInputResponse(generation=10)

    def GetScreen(
        self, request: hub_pb2.GetScreenRequest, context: Ctx
    ) -> hub_pb2.GetScreenResponse:
        self._record("GetScreen", request, context)
        screen = types_pb2.Screen(rows=4, cols=20, lines=["$ echo hi", "hi", "$", ""])
        return hub_pb2.GetScreenResponse(screen=screen)

    def AwaitIdle(
        self, request: hub_pb2.AwaitIdleRequest, context: Ctx
    ) -> hub_pb2.AwaitIdleResponse:
        self._record("AwaitIdle", request, context)
        idle = idle_of(request.name, request.last_generation + 1, ["$ make", "done", ""])
        return hub_pb2.AwaitIdleResponse(idle=idle)

    def RaceIdle(
        self, request: hub_pb2.RaceIdleRequest, context: Ctx
    ) -> Iterator[hub_pb2.RaceIdleResponse]:
        self._record("RaceIdle", request, context)
        yield hub_pb2.RaceIdleResponse(idle=idle_of("a", 5, ["first"]))
        yield hub_pb2.RaceIdleResponse(idle=idle_of("b", 6, ["second"]))
        if self.race_then_deadline:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Nothing settled.")

    def AddServer(
        self, request: hub_pb2.AddServerRequest, context: Ctx
    ) -> hub_pb2.AddServerResponse:
        self._record("AddServer", request, context)
        if self.add_error is not None:
            context.abort_with_status(self.add_error)
        server = hub_pb2.Server(
            hostname="b1",
            address=request.address,
            health=self.add_health,
            role=hub_pb2.SERVER_ROLE_MEMBER,
            last_error="" if self.add_health == hub_pb2.SERVER_HEALTH_HEALTHY else "self loop",
        )
        return hub_pb2.AddServerResponse(server=server)

    def RemoveServer(
        self, request: hub_pb2.RemoveServerRequest, context: Ctx
    ) -> hub_pb2.RemoveServerResponse:
        self._record("RemoveServer", request, context)
        return hub_pb2.RemoveServerResponse()

    def ListServers(
        self, request: hub_pb2.ListServersRequest, context: Ctx
    ) -> hub_pb2.ListServersResponse:
        self._record("ListServers", request, context)
        local = hub_pb2.Server(
            hostname="hub",
            address="local",
            health=hub_pb2.SERVER_HEALTH_HEALTHY,
            role=hub_pb2.SERVER_ROLE_LOCAL,
        )
        return hub_pb2.ListServersResponse(servers=[local, *self.registered])

    def ReloadConfig(
        self, request: hub_pb2.ReloadConfigRequest, context: Ctx
    ) -> hub_pb2.ReloadConfigResponse:
        self._record("ReloadConfig", request, context)
        return hub_pb2.ReloadConfigResponse(added=["http://n:1"], warnings=["odd entry"])


@dataclass
class Running:
    hub: Hub
    addr: str

    def run(self, *argv: str) -> int:
        return main(["--addr", self.addr, "--deadline-s", "5", *argv])


DOWN = hub_pb2.Server(
    hostname="b2",
    address="http://10.0.0.3:7600",
    health=hub_pb2.SERVER_HEALTH_UNAVAILABLE,
    role=hub_pb2.SERVER_ROLE_MEMBER,
    last_error="connection refused\n" + "details " * 20,
)
