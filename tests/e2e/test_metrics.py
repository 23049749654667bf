"""The Prometheus endpoint (``--metrics-listen``) of a hub and its backend, scraped."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.calls import await_idle, create, expect_error, kill, send
from tests.cluster import Cluster, wait_until
from tests.procs import ServerProc, free_port, stub
from wsh.v1 import hub_pb2

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_value(port: int, expected: float, name: str, **labels: str) -> None:
    """A call that ended with an error status is counted once its handler
    has unwound, which may be just after the client saw the status."""
    wait_until(
        lambda: value(scrape(port), name, **labels) == expected,
        timeout=10,
        what=f"{name}{labels} to be {expected}",
    )


class Metered(Cluster):
    """A hub and one backend, both serving metrics."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, backends=("build-1",))
        self.ports = {"hub": free_port(), "build-1": free_port()}
        for name, proc in (("hub", self.hub), ("build-1", self.backends["build-1"])):
            proc.args = (*proc.args, "--metrics-listen", f"127.0.0.1:{self.ports[name]}")


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metered]:
    with Metered(tmp_path_factory.mktemp("metrics")) as running:
        yield running


def hub_method(method: str, **labels: str) -> dict[str, str]:
    return {
        "grpc_service": "wsh.v1.HubService",
        "grpc_method": method,
        **labels,
    }


def test_rpc_and_state_metrics_move(metered: Metered) -> None:
    hub = metered.stub
    assert hub is not None
    hub_port, backend_port = metered.ports["hub"], metered.ports["build-1"]
    before_hub, before_backend = scrape(hub_port), scrape(backend_port)

    create(hub, "metered", server="build-1")
    gen = send(hub, "metered", "", "printf 'x%.0s' $(seq 1 3000); echo\n")
    await_idle(hub, "metered", last=gen)
    expect_error(
        lambda: hub.GetSession(hub_pb2.GetSessionRequest(name="metered", server="hub"), timeout=10),
        grpc.StatusCode.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )

    after = scrape(hub_port)
    created = hub_method("CreateSession")
    assert (
        value(after, "wsh_grpc_server_started_total", **created)
        == value(before_hub, "wsh_grpc_server_started_total", **created) + 1
    )
    assert value(after, "wsh_grpc_server_handled_total", **created, grpc_code="OK") >= 1
    wait_value(
        hub_port,
        1,
        "wsh_grpc_server_handled_total",
        **hub_method("GetSession"),
        grpc_code="NOT_FOUND",
    )
    assert value(after, "wsh_grpc_server_handling_seconds_count", **created) >= 1
    for method in ("CreateSession", "SendInput", "AwaitIdle"):
        assert (
            value(
                after,
                "wsh_forwarded_calls_total",
                backend="build-1",
                grpc_method=method,
                outcome="OK",
            )
            >= 1
        ), method
    assert value(after, "wsh_backends", health="healthy") == 1
    assert value(after, "wsh_backend_link_rtt_seconds", backend="build-1") > 0
    # The hub's Link to the backend is a stream in flight there.
    on_backend = scrape(backend_port)
    link = {
        "grpc_service": "wsh.v1.BackendService",
        "grpc_method": "Link",
    }
    assert value(on_backend, "wsh_grpc_server_in_flight", **link) == 1
    assert (
        value(on_backend, "wsh_sessions", state="running")
        == value(before_backend, "wsh_sessions", state="running") + 1
    )
    printed = value(on_backend, "wsh_pty_output_bytes_total")
    assert printed >= value(before_backend, "wsh_pty_output_bytes_total") + 3000

    kill(hub, "metered")
    wait_until(
        lambda: (
            value(scrape(backend_port), "wsh_sessions", state="running")
            == value(before_backend, "wsh_sessions", state="running")
        ),
        timeout=10,
        what="the killed session to leave the backend's gauge",
    )
    # A killed session's output stays counted: a counter never goes down.
    assert value(scrape(backend_port), "wsh_pty_output_bytes_total") >= printed


def test_waits_open_are_calls_in_flight(metered: Metered) -> None:
    hub = metered.stub
    assert hub is not None
    create(hub, "waiting", server="build-1", command="cat")
    channel, own = stub(metered.hub.addr)
    try:
        future = own.AwaitIdle.future(
            hub_pb2.AwaitIdleRequest(name="waiting", timeout_ms=60_000, max_wait_ms=60_000),
            timeout=30,
        )
        wait = hub_method("AwaitIdle")
        for port in (metered.ports["hub"], metered.ports["build-1"]):
            wait_until(
                lambda port=port: value(scrape(port), "wsh_grpc_server_in_flight", **wait) == 1,
                timeout=10,
                what="the wait to show in flight",
            )
        future.cancel()
        wait_until(
            lambda: value(scrape(metered.ports["hub"]), "wsh_grpc_server_in_flight", **wait) == 0,
            timeout=10,
            what="the cancelled wait to end",
        )
        assert (
            value(
                scrape(metered.ports["hub"]),
                "wsh_grpc_server_handled_total",
                **wait,
                grpc_code="CANCELLED",
            )
            == 1
        )
    finally:
        channel.close()
        kill(hub, "waiting")


def test_refused_calls_are_counted(tmp_path: Path) -> None:
    port = free_port()
    token = "t" * 24
    with ServerProc(
        "guarded", "--metrics-listen", f"127.0.0.1:{port}", env={"WSH_TOKEN": token}
    ) as server:
        channel, hub = stub(server.addr)
        with channel:
            expect_error(
                lambda: hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=10),
                grpc.StatusCode.UNAUTHENTICATED,
                "UNAUTHENTICATED",
            )
        refused = {
            "grpc_service": "wsh.v1.HubService",
            "grpc_method": "ListSessions",
            "grpc_code": "UNAUTHENTICATED",
        }
        wait_value(port, 1, "wsh_grpc_server_handled_total", **refused)


def test_metrics_listen_in_use_stops_the_start(tmp_path: Path) -> None:
    port = free_port()
    with ServerProc("first", "--metrics-listen", f"127.0.0.1:{port}"):
        second = ServerProc(
            "second", "--metrics-listen", f"127.0.0.1:{port}", log_path=tmp_path / "second.log"
        )
        with pytest.raises(RuntimeError, match="exited: 1"):
            second.start()
    log = (tmp_path / "second.log").read_text()
    assert "ADDRESS_IN_USE: Cannot serve metrics on 127.0.0.1:" in log
    assert "Traceback" not in log
