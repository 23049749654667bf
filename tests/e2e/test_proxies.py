"""End-to-end: long waits from hub to backend through proxies that cut quiet streams.

Envoy's ``stream_idle_timeout`` and nginx's ``grpc_read_timeout`` reset a
stream that carried no data for a while (3 s here; 5 min and 60 s by
default). A race leg or a forwarded AwaitIdle that is cut while the Link
says the backend is healthy must be asked again, so that no settle is lost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, create
from tests.envoy import Envoy
from tests.nginx import NGINX, Nginx
from tests.procs import ServerProc, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

CUT_AFTER = "3s"


@contextlib.contextmanager
def proxied_cluster(tmp: Path, proxy: str) -> Iterator[hub_pb2_grpc.HubServiceStub]:
    """A hub whose only backend sits behind ``proxy`` with a 3 s quiet-stream cut."""
    with (
        ServerProc("be", "--config", str(tmp / "be.toml"), log_path=tmp / "be.log") as backend,
        ServerProc("hub", "--config", str(tmp / "hub.toml"), log_path=tmp / "hub.log") as hub_p,
    ):
        front: Envoy | Nginx
        if proxy == "envoy":
            front = Envoy(tmp, backend.addr, stream_idle_timeout=CUT_AFTER)
            url = f"http://{front.start().addr}"
        else:
            if NGINX is None:
                pytest.fail("nginx is not installed; scripts/setup installs it")
            front = Nginx(tmp, {"/be": backend.addr}, read_timeout=CUT_AFTER)
            url = f"http://127.0.0.1:{front.start().port}/be"
        try:
            channel, hub = stub(hub_p.addr)
            with channel:
                added = hub.AddServer(
                    hub_pb2.AddServerRequest(address=url, wait=True), timeout=RPC_TIMEOUT
                ).server
                assert added.health == hub_pb2.SERVER_HEALTH_HEALTHY, added
                yield hub
        finally:
            front.kill()


@pytest.mark.parametrize("proxy", ["envoy", "nginx"])
def test_a_race_held_through_stream_cuts_delivers_every_settle(tmp_path: Path, proxy: str) -> None:
    with proxied_cluster(tmp_path, proxy) as hub:
        for name, after in (("late6", 6), ("late12", 12)):
            create(
                hub,
                name,
                "be",
                command=f"sleep {after}; echo {name}-spoke; exec sleep 600",
                tags=["slow"],
            )
        stream = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["slow"], timeout_ms=300, max_wait_ms=15_000),
            timeout=30,
        )
        spoke: dict[str, float] = {}
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as ended:
            for response in stream:
                idle = response.idle
                if f"{idle.session}-spoke" in idle.screen.lines:
                    spoke[idle.session] = time.monotonic() - started
                if len(spoke) == 2:
                    stream.cancel()
        assert ended.value.code() == grpc.StatusCode.CANCELLED, ended.value  # type: ignore[attr-defined]
        assert sorted(spoke) == ["late12", "late6"], spoke


@pytest.mark.parametrize("proxy", ["envoy", "nginx"])
def test_a_forwarded_wait_outlives_stream_cuts(tmp_path: Path, proxy: str) -> None:
    with proxied_cluster(tmp_path, proxy) as hub:
        create(hub, "waiter", "be", command="sleep 7; echo at-last; exec sleep 600")
        current = hub.GetSession(
            hub_pb2.GetSessionRequest(name="waiter"), timeout=RPC_TIMEOUT
        ).session.generation
        request = hub_pb2.AwaitIdleRequest(
            name="waiter", timeout_ms=300, max_wait_ms=20_000, last_generation=current
        )
        idle = hub.AwaitIdle(request, timeout=30).idle
        assert idle.server == "be" and "at-last" in idle.screen.lines
