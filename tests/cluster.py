"""A hub and its backends as real processes, for end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc

from tests.calls import RPC_TIMEOUT
from tests.procs import ServerProc, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def server_entry(
    hub: hub_pb2_grpc.HubServiceStub, hostname: str = "", address: str = ""
) -> hub_pb2.Server | None:
    for entry in hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers:
        if (hostname and entry.hostname == hostname) or (address and entry.address == address):
            return entry
    return None


def wait_health(
    hub: hub_pb2_grpc.HubServiceStub,
    health: int,
    *,
    hostname: str = "",
    address: str = "",
    timeout: float = 15.0,
) -> hub_pb2.Server:
    found: list[hub_pb2.Server] = []

    def check() -> bool:
        entry = server_entry(hub, hostname, address)
        found[:] = [entry] if entry is not None else []
        return entry is not None and entry.health == health

    wait_until(check, timeout, f"{hostname or address} to reach health {health}")
    return found[0]


class Cluster:
    """A hub plus named backends, each a ``wsh server`` process."""

    def __init__(self, tmp: Path, backends: tuple[str, ...] = ("build-1", "build-2")) -> None:
        self.tmp = tmp
        self.backends = {
            name: ServerProc(
                name, "--config", str(tmp / f"{name}.toml"), log_path=tmp / f"{name}.log"
            )
            for name in backends
        }
        self.hub_config = tmp / "hub.toml"
        self.hub = ServerProc("hub", "--config", str(self.hub_config), log_path=tmp / "hub.log")
        self.channel: grpc.Channel | None = None
        self.stub: hub_pb2_grpc.HubServiceStub | None = None

    def start(self) -> Cluster:
        for backend in self.backends.values():
            backend.start()
        self.hub.start()
        self.channel, self.stub = stub(self.hub.addr)
        for backend in self.backends.values():
            added = self.stub.AddServer(
                hub_pb2.AddServerRequest(address=backend.url, wait=True), timeout=RPC_TIMEOUT
            ).server
            assert added.health == hub_pb2.SERVER_HEALTH_HEALTHY, added
        return self

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        for proc in (self.hub, *self.backends.values()):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
