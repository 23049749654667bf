"""Session calls through a hub's raw stub, as the end-to-end tests make them."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from tests.procs import error_reason
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

BASH = "bash --norc --noprofile"
RPC_TIMEOUT = 15.0


def create(
    hub: hub_pb2_grpc.HubServiceStub, name: str, server: str = "", **kw: object
) -> types_pb2.Session:
    """A session named ``name`` on ``server``; a plain bash unless ``command`` says otherwise."""
    kw.setdefault("command", BASH)
    req = hub_pb2.CreateSessionRequest(name=name, server=server, **kw)  # type: ignore[arg-type]
    return hub.CreateSession(req, timeout=RPC_TIMEOUT).session


def send(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str, text: str) -> int:
    """Send ``text``; returns the generation the input was counted at."""
    req = hub_pb2.SendInputRequest(name=name, server=server, data=text.encode())
    return hub.SendInput(req, timeout=RPC_TIMEOUT).generation


def await_idle(
    hub: hub_pb2_grpc.HubServiceStub,
    name: str,
    server: str = "",
    last: int | None = None,
    timeout_ms: int = 300,
    max_wait_ms: int = 20_000,
) -> types_pb2.Idle:
    req = hub_pb2.AwaitIdleRequest(
        name=name, server=server, timeout_ms=timeout_ms, max_wait_ms=max_wait_ms
    )
    if last is not None:
        req.last_generation = last
    return hub.AwaitIdle(req, timeout=max_wait_ms / 1000 + 10).idle


def kill(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str = "") -> None:
    hub.KillSession(hub_pb2.KillSessionRequest(name=name, server=server), timeout=RPC_TIMEOUT)


def expect_error(call: Callable[[], object], code: grpc.StatusCode, reason: str) -> str:
    """Run ``call``, check its status code and ErrorInfo reason; return its message."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    details: str = err.details() or ""  # type: ignore[attr-defined]
    assert err.code() == code, details  # type: ignore[attr-defined]
    assert error_reason(err) == reason, details
    return details
