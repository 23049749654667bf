"""End-to-end: a backend's hostname belongs to its address.

The first time the hub links to an address it records the hostname there
(``hostname = "..."`` in the address's ``[[servers]]`` entry). From then on no
other backend may present that name, whether the owner is up or down, and the
owner presenting another name is refused until the operator accepts the
rename. Refusals for a name are asked again, so the rightful backend recovers
once the name is free.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, create, expect_error
from tests.cluster import server_entry, wait_health, wait_until
from tests.fakes import FakeBackend
from tests.procs import ServerProc, assert_no_traceback, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY
UNAVAILABLE = hub_pb2.SERVER_HEALTH_UNAVAILABLE
CONNECTING = hub_pb2.SERVER_HEALTH_CONNECTING
REJECTED = hub_pb2.SERVER_HEALTH_REJECTED
FAKE_PID = 4242  # what tests/fake_backend.py reports for every session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Procs:
    """Processes a test starts, all stopped at its end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[ServerProc | FakeBackend] = []

    def server(self, hostname: str, *, port: int = 0, config: str = "") -> ServerProc:
        proc = ServerProc(
            hostname,
            "--config",
            str(self.tmp / (config or f"{hostname}.toml")),
            listen=f"127.0.0.1:{port}",
            log_path=self.tmp / f"{hostname}.log",
        )
        self.started.append(proc)
        return proc.start()

    def fake(self, hostname: str) -> FakeBackend:
        fake = FakeBackend(self.tmp, hostname)
        self.started.append(fake)
        return fake.start()

    def stop(self) -> None:
        for proc in self.started:
            running = proc.proc is not None and proc.proc.poll() is None
            if isinstance(proc, FakeBackend) or running:
                proc.stop()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.stop()
    hub_log = tmp_path / "hub.log"
    if hub_log.exists():
        assert_no_traceback(hub_log.read_text(errors="replace"))


def add(hub: hub_pb2_grpc.HubServiceStub, url: str) -> hub_pb2.Server:
    request = hub_pb2.AddServerRequest(address=url, wait=True)
    return hub.AddServer(request, timeout=RPC_TIMEOUT).server


def wait_owned(config: Path, hostname: str) -> None:
    wait_until(
        lambda: f'hostname = "{hostname}"' in config.read_text(),
        10,
        f"hostname {hostname} written back to {config}",
    )


def test_impostor_cannot_take_the_name_of_a_backend_that_is_down(procs: Procs) -> None:
    hub_config = procs.tmp / "hub.toml"
    port = free_port()
    real = procs.server("build-1", port=port)
    hub = procs.server("hub")
    channel, hub_stub = stub(hub.addr)
    with channel:
        assert add(hub_stub, real.url).health == HEALTHY
        wait_owned(hub_config, "build-1")
    hub.stop()
    real.stop()

    # The hub starts while build-1 is down, with an impostor registered too.
    impostor = procs.fake("build-1")
    with hub_config.open("a") as config:
        config.write(f'\n[[servers]]\naddress = "{impostor.url}"\n')
    hub.start()
    channel, hub_stub = stub(hub.addr)
    with channel:
        refused = wait_health(hub_stub, REJECTED, address=impostor.url)
        assert refused.last_error.startswith("HOSTNAME_TAKEN"), refused.last_error
        assert real.url in refused.last_error
        owner = server_entry(hub_stub, address=real.url)
        assert owner is not None and owner.hostname == "build-1"
        assert owner.health in (CONNECTING, UNAVAILABLE), owner
        # Calls for build-1 are refused, not handed to the impostor.
        expect_error(
            lambda: create(hub_stub, "s1", "build-1", command="cat"),
            grpc.StatusCode.UNAVAILABLE,
            "SERVER_UNAVAILABLE",
        )

        real.start()
        wait_health(hub_stub, HEALTHY, address=real.url, timeout=20)
        made = create(hub_stub, "s1", "build-1", command="cat")
        assert made.server == "build-1" and made.pid != FAKE_PID
        still = server_entry(hub_stub, address=impostor.url)
        assert still is not None and still.health == REJECTED
    assert impostor.calls() == []  # its HubService was never called


def test_a_refused_backend_gets_its_name_once_the_holder_is_removed(procs: Procs) -> None:
    hub = procs.server("hub")
    first = procs.fake("build-2")
    second = procs.server("build-2")
    channel, hub_stub = stub(hub.addr)
    with channel:
        assert add(hub_stub, first.url).health == HEALTHY
        refused = add(hub_stub, second.url)
        assert refused.health == REJECTED, refused
        assert refused.last_error.startswith("HOSTNAME_TAKEN") and first.url in refused.last_error

        hub_stub.RemoveServer(hub_pb2.RemoveServerRequest(address=first.url), timeout=RPC_TIMEOUT)
        # Refusals for a name are asked again every 5-7.5 s.
        entry = wait_health(hub_stub, HEALTHY, address=second.url, timeout=20)
        assert entry.hostname == "build-2" and entry.last_error == ""
        made = create(hub_stub, "s2", "build-2", command="cat")
        assert made.pid != FAKE_PID


def test_a_renamed_backend_is_refused_until_the_operator_accepts_it(procs: Procs) -> None:
    hub_config = procs.tmp / "hub.toml"
    port = free_port()
    old = procs.server("build-3", port=port)
    hub = procs.server("hub")
    channel, hub_stub = stub(hub.addr)
    with channel:
        assert add(hub_stub, old.url).health == HEALTHY
        wait_owned(hub_config, "build-3")
        old.stop()
        # Another server now answers at that address, under another name.
        new = procs.server("build-4", port=port, config="build-3.toml")
        refused = wait_health(hub_stub, REJECTED, address=new.url, timeout=20)
        assert refused.last_error.startswith("HOSTNAME_CHANGED"), refused.last_error
        assert "'build-3'" in refused.last_error and "'build-4'" in refused.last_error
        # Neither name leads to it while it is refused.
        for name in ("build-3", "build-4"):
            expect_error(
                lambda n=name: create(hub_stub, "s3", n, command="cat"),  # type: ignore[misc]
                grpc.StatusCode.NOT_FOUND,
                "SERVER_NOT_FOUND",
            )

        # The operator accepts the rename in the config and reloads.
        hub_config.write_text(
            hub_config.read_text().replace('hostname = "build-3"', 'hostname = "build-4"')
        )
        hub_stub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
        entry = wait_health(hub_stub, HEALTHY, address=new.url, timeout=20)
        assert entry.hostname == "build-4"
        assert create(hub_stub, "s4", "build-4", command="cat").server == "build-4"


def test_two_config_entries_owning_one_name_the_first_keeps_it(procs: Procs) -> None:
    first = procs.server("build-5")
    second = procs.server("build-5", config="build-5-again.toml")
    hub_config = procs.tmp / "hub.toml"
    hub_config.write_text(
        f'[[servers]]\naddress = "{first.url}"\nhostname = "build-5"\n\n'
        f'[[servers]]\naddress = "{second.url}"\nhostname = "build-5"\n'
    )
    hub = procs.server("hub")
    channel, hub_stub = stub(hub.addr)
    with channel:
        wait_health(hub_stub, HEALTHY, address=first.url)
        refused = wait_health(hub_stub, REJECTED, address=second.url)
        assert refused.last_error.startswith("HOSTNAME_TAKEN") and first.url in refused.last_error
        create(hub_stub, "s5", "build-5", command="cat")
    for proc, holds in ((first, True), (second, False)):
        direct, backend = stub(proc.addr)
        with direct:
            listed = backend.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT)
        assert ("s5" in [s.name for s in listed.sessions]) is holds, proc.url
    log = (procs.tmp / "hub.log").read_text()
    assert f"config backends {first.url} and {second.url} both own hostname 'build-5'" in log
