"""Backends found in DNS ([[discovery]]), against a real DNS server (dnsmasq)
whose records the test changes while the hub runs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, create, expect_error
from tests.cluster import server_entry, wait_health, wait_until
from tests.dnsmasq import Dnsmasq, available
from tests.procs import ServerProc, assert_no_traceback, free_port, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not available(), reason="dnsmasq is not installed (scripts/setup)"),
]

NAME = "backends.wsh.test"
HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY
B1, B2 = "127.0.0.2", "127.0.0.3"


def shared_port(*hosts: str) -> int:
    """A port free on every one of ``hosts`` (loopback addresses)."""
    for _ in range(50):
        port = free_port(hosts[0])
        with ExitStack() as stack:
            try:
                for host in hosts[1:]:
                    sock = stack.enter_context(socket.socket())
                    sock.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free on all of " + ", ".join(hosts))


def hub_config(path: Path, dns: Dnsmasq, extra: str = "", **entry: object) -> Path:
    fields = {"name": NAME, "nameserver": dns.nameserver, "interval": 1, "grace": 1, **entry}
    lines = "".join(
        f"{key} = {value!r}\n" if isinstance(value, str) else f"{key} = {value}\n"
        for key, value in fields.items()
    ).replace("'", '"')
    path.write_text(extra + "[[discovery]]\n" + lines)
    return path


def listed(hub: hub_pb2_grpc.HubServiceStub) -> set[str]:
    servers = hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
    return {s.address for s in servers if s.address != "local"}  # "local": the hub


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[int, ServerProc, ServerProc]]:
    port = shared_port(B1, B2)
    with (
        ServerProc("disc-1", listen=f"{B1}:{port}", log_path=tmp_path / "b1.log") as b1,
        ServerProc("disc-2", listen=f"{B2}:{port}", log_path=tmp_path / "b2.log") as b2,
    ):
        yield port, b1, b2


def test_backends_come_and_go_with_dns(
    tmp_path: Path, backends: tuple[int, ServerProc, ServerProc]
) -> None:
    port, b1, _b2 = backends
    url1, url2 = f"http://{B1}:{port}", f"http://{B2}:{port}"
    with Dnsmasq(tmp_path, [f"{B1} {NAME}"]) as dns:
        config = hub_config(tmp_path / "hub.toml", dns, port=port)
        with ServerProc("hub", "--config", str(config), log_path=tmp_path / "hub.log") as hub_proc:
            channel, hub = stub(hub_proc.addr)
            with channel:
                wait_health(hub, HEALTHY, hostname="disc-1")
                create(hub, "survivor", server="disc-1", command="cat")
                # A backend registered by hand is the operator's, whatever DNS says.
                manual = ServerProc("manual", log_path=tmp_path / "manual.log").start()
                try:
                    hub.AddServer(
                        hub_pb2.AddServerRequest(address=manual.url, wait=True),
                        timeout=RPC_TIMEOUT,
                    )
                    # Scale up: a second address appears.
                    dns.set_hosts([f"{B1} {NAME}", f"{B2} {NAME}"])
                    wait_health(hub, HEALTHY, hostname="disc-2", timeout=15)
                    assert listed(hub) == {url1, url2, manual.url}
                    # Discovered backends are not removed by hand...
                    expect_error(
                        lambda: hub.RemoveServer(
                            hub_pb2.RemoveServerRequest(hostname="disc-1"), timeout=RPC_TIMEOUT
                        ),
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "SERVER_DISCOVERED",
                    )
                    # ...and scale down: one goes after the grace period.
                    dns.set_hosts([f"{B2} {NAME}"])
                    wait_until(
                        lambda: listed(hub) == {url2, manual.url},
                        timeout=15,
                        what="disc-1 to be removed",
                    )
                    # DNS losing everything leaves the manual registration alone.
                    dns.set_hosts([])
                    wait_until(lambda: listed(hub) == {manual.url}, timeout=15, what="disc-2 to go")
                    entry = server_entry(hub, hostname="manual")
                    assert entry is not None and entry.health == HEALTHY
                finally:
                    manual.stop()
        # Its sessions keep running there.
        b1_channel, direct = stub(b1.addr)
        with b1_channel:
            got = direct.GetSession(hub_pb2.GetSessionRequest(name="survivor"), timeout=10)
            assert got.session.state != 0
    # Only the manual registration was written to the config file.
    text = config.read_text()
    assert manual.url in text
    assert f"{B1}:{port}" not in text and f"{B2}:{port}" not in text
    assert_no_traceback((tmp_path / "hub.log").read_text())


def test_srv_records_give_the_ports(tmp_path: Path) -> None:
    with ServerProc("srv-1", log_path=tmp_path / "srv-1.log") as backend:
        port = int(backend.addr.rsplit(":", 1)[1])
        with Dnsmasq(
            tmp_path,
            ["127.0.0.1 srv-1.wsh.test"],
            srv=(f"_wsh._tcp.{NAME},srv-1.wsh.test,{port}",),
        ) as dns:
            config = hub_config(tmp_path / "hub.toml", dns, name=f"_wsh._tcp.{NAME}", type="SRV")
            with ServerProc("hub", "--config", str(config), log_path=tmp_path / "hub.log") as hub:
                channel, client = stub(hub.addr)
                with channel:
                    found = wait_health(client, HEALTHY, hostname="srv-1")
                    assert found.address == backend.url


def test_ip_access_applies_to_discovered_addresses(
    tmp_path: Path, backends: tuple[int, ServerProc, ServerProc]
) -> None:
    port, _b1, _b2 = backends
    with Dnsmasq(tmp_path, [f"{B1} {NAME}", f"{B2} {NAME}"]) as dns:
        config = hub_config(
            tmp_path / "hub.toml",
            dns,
            extra=f'[ip_access]\nblocklist = ["{B1}/32"]\n\n',
            port=port,
        )
        log = tmp_path / "hub.log"
        with ServerProc("hub", "--config", str(config), log_path=log) as hub:
            channel, client = stub(hub.addr)
            with channel:
                wait_health(client, HEALTHY, hostname="disc-2")
                wait_until(lambda: "not added" in log.read_text(), what="the refusal logged")
                assert listed(client) == {f"http://{B2}:{port}"}
    assert f"{B1}:{port} not added" in log.read_text()
