"""Attach end to end: on the hub's own sessions and relayed to a backend's."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.attach import Attacher
from tests.calls import RPC_TIMEOUT, create, kill
from tests.cluster import Cluster, wait_until
from tests.procs import ServerProc, assert_no_traceback, error_reason, stub
from wsh.client import AsyncClient, Client, WshRpcError
from wsh.terminal.screen import TerminalScreen
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

WHERE = ["local", "remote"]


def server_of(where: str) -> str:
    return "" if where == "local" else "build-1"


def stats(hub: hub_pb2_grpc.HubServiceStub) -> hub_pb2.ServerStats:
    return hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT).stats


def backend_stub(cluster: Cluster, name: str) -> hub_pb2_grpc.HubServiceStub:
    return stub(cluster.backends[name].addr)[1]


def screen_of(hub: hub_pb2_grpc.HubServiceStub, name: str) -> hub_pb2.GetScreenResponse:
    return hub.GetScreen(hub_pb2.GetScreenRequest(name=name), timeout=RPC_TIMEOUT)


@pytest.mark.parametrize("where", WHERE)
def test_snapshot_then_output_then_input(
    cluster_hub: hub_pb2_grpc.HubServiceStub, where: str
) -> None:
    name = f"att-basic-{where}"
    create(cluster_hub, name, server_of(where), command="printf 'before\\n'; exec cat")
    wait_until(lambda: "before" in screen_of(cluster_hub, name).screen.lines[0])
    # Routed by name alone, as every call naming a session is.
    attached = Attacher(cluster_hub, name)
    attached.step(20)
    snap = attached.snapshots[0]
    assert snap.server == (server_of(where) or "hub")
    assert snap.resyncs == 0
    assert snap.screen.lines[0] == "before"
    assert attached.lines().startswith("before")  # the repaint shows it too
    attached.send(b"typed\n")
    attached.until(b"typed\r\ntyped\r\n")  # the echo, then cat's copy
    screen = screen_of(cluster_hub, name).screen
    assert snap.generation < screen.generation
    assert attached.screen is not None
    assert attached.screen.view(False).lines == tuple(screen.lines)
    attached.detach()
    attached.finish()
    assert attached.error is None and attached.exit_code is None
    kill(cluster_hub, name)


@pytest.mark.parametrize("where", WHERE)
def test_output_while_attaching_is_neither_lost_nor_repeated(
    cluster_hub: hub_pb2_grpc.HubServiceStub, where: str
) -> None:
    """Attached while a program floods colours, the client's own emulator,
    fed the snapshot then every chunk, ends on the server's final screen."""
    name = f"att-flood-{where}"
    create(
        cluster_hub,
        name,
        server_of(where),
        rows=12,
        cols=50,
        command="sleep 0.3; for i in $(seq 1 20000); do "
        "printf '\\033[3%dmrow %d \\303\\251\\033[0m\\n' $((i % 7)) $i; done; exit 3",
    )
    attached = Attacher(cluster_hub, name)
    attached.finish(60)
    assert attached.error is None, attached.error
    assert attached.exit_code == 3
    final = cluster_hub.GetScreen(
        hub_pb2.GetScreenRequest(name=name),
        timeout=RPC_TIMEOUT,
    ).screen
    assert attached.screen is not None
    view = attached.screen.view(False)
    assert view.lines == tuple(final.lines)
    assert "row 20000 é" in view.lines
    assert (view.cursor.row, view.cursor.col) == (final.cursor.row, final.cursor.col)
    kill(cluster_hub, name)


@pytest.mark.parametrize("where", WHERE)
def test_resize_is_seen_by_the_program(
    cluster_hub: hub_pb2_grpc.HubServiceStub, where: str
) -> None:
    name = f"att-size-{where}"
    create(cluster_hub, name, server_of(where))
    attached = Attacher(cluster_hub, name, size=(30, 100))
    attached.step(20)
    assert (attached.snapshots[0].screen.rows, attached.snapshots[0].screen.cols) == (30, 100)
    attached.send(b"stty size\n")
    attached.until(b"30 100")
    attached.resize(40, 120)
    attached.send(b"stty size\n")
    attached.until(b"40 120")
    attached.close()
    kill(cluster_hub, name)


@pytest.mark.parametrize("where", WHERE)
def test_two_attachers_and_a_read_only_one_refused_input(
    cluster_hub: hub_pb2_grpc.HubServiceStub, where: str
) -> None:
    name = f"att-two-{where}"
    create(cluster_hub, name, server_of(where))
    driver = Attacher(cluster_hub, name)
    watcher = Attacher(cluster_hub, name, read_only=True, size=(5, 5))
    watcher.step(20)
    # A read-only attacher never resizes.
    assert watcher.snapshots[0].screen.rows == 24
    driver.send(b"echo both-$((40+2))\n")
    driver.until(b"both-42")
    watcher.until(b"both-42")
    # A client that closes its side still receives.
    quiet = Attacher(cluster_hub, name, read_only=True)
    quiet.half_close()
    # Its snapshot first: output from before it would be in the repaint,
    # not in the output this waits for (a race that a loaded machine lost).
    quiet.step(20)
    driver.send(b"echo half-$((3+3))\n")
    quiet.until(b"half-6")
    quiet.close()
    watcher.send(b"echo no\n")
    watcher.finish()
    assert watcher.error is not None
    assert watcher.error.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert error_reason(watcher.error) == "ATTACH_READ_ONLY"
    driver.send(b"echo still-$((1+1))\n")
    driver.until(b"still-2")
    driver.close()
    kill(cluster_hub, name)


@pytest.mark.parametrize("where", WHERE)
def test_exit_code_ends_the_stream(cluster_hub: hub_pb2_grpc.HubServiceStub, where: str) -> None:
    name = f"att-exit-{where}"
    create(cluster_hub, name, server_of(where), command="read line; echo got-$line; exit 7")
    attached = Attacher(cluster_hub, name)
    attached.send(b"it\n")
    attached.finish()
    assert attached.error is None, attached.error
    assert b"got-it" in attached.output
    assert attached.exit_code == 7
    # Attaching to the exited session: its final screen, then its exit.
    again = Attacher(cluster_hub, name)
    again.finish()
    assert again.exit_code == 7 and "got-it" in again.lines()
    kill(cluster_hub, name)


@pytest.mark.parametrize("where", WHERE)
def test_kill_ends_the_stream_with_session_not_found(
    cluster_hub: hub_pb2_grpc.HubServiceStub, where: str
) -> None:
    name = f"att-kill-{where}"
    create(cluster_hub, name, server_of(where))
    attached = Attacher(cluster_hub, name)
    attached.step(20)
    kill(cluster_hub, name)
    attached.finish()
    assert attached.error is not None
    assert attached.error.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert error_reason(attached.error) == "SESSION_NOT_FOUND"


def _refused(hub: hub_pb2_grpc.HubServiceStub, attached: Attacher) -> tuple[object, str]:
    attached.finish()
    assert attached.error is not None
    return attached.error.code(), error_reason(attached.error)  # type: ignore[attr-defined]


@pytest.mark.parametrize("where", WHERE)
def test_bad_requests_get_their_codes(cluster_hub: hub_pb2_grpc.HubServiceStub, where: str) -> None:
    name = f"att-bad-{where}"
    server = server_of(where)
    create(cluster_hub, name, server)
    not_start = Attacher(
        cluster_hub, name, first=hub_pb2.AttachRequest(input=b"x")
    )  # no session named: the first request is what is wrong
    assert _refused(cluster_hub, not_start) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ATTACH_NOT_STARTED",
    )
    missing = Attacher(cluster_hub, "att-nobody", server)
    assert _refused(cluster_hub, missing) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
    big = Attacher(cluster_hub, name)
    big.step(20)
    big.send(b"x" * (1024 * 1024 + 1))
    assert _refused(cluster_hub, big) == (grpc.StatusCode.INVALID_ARGUMENT, "INPUT_TOO_LARGE")
    twice = Attacher(cluster_hub, name)
    twice.step(20)
    twice._requests.put(hub_pb2.AttachRequest(start=hub_pb2.AttachStart(name=name)))
    assert _refused(cluster_hub, twice) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ATTACH_ALREADY_STARTED",
    )
    kill(cluster_hub, name)


def test_deadline_and_cancel_reach_the_backend(
    cluster: Cluster, cluster_hub: hub_pb2_grpc.HubServiceStub
) -> None:
    name = "att-deadline"
    create(cluster_hub, name, "build-2")
    backend = backend_stub(cluster, "build-2")
    timed = Attacher(cluster_hub, name, timeout=2.0)
    timed.step(20)
    wait_until(lambda: stats(backend).attaches == 1, what="the relayed attach")
    timed.finish()
    assert timed.error is not None
    assert timed.error.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    wait_until(lambda: stats(backend).attaches == 0, what="the backend's attach to end")
    cancelled = Attacher(cluster_hub, name)
    cancelled.step(20)
    wait_until(lambda: stats(backend).attaches == 1, what="the relayed attach")
    cancelled.close()
    wait_until(lambda: stats(backend).attaches == 0, what="the backend's attach to end")
    wait_until(lambda: stats(cluster_hub).attaches == 0, what="the hub's attach to end")
    kill(cluster_hub, name)


def test_no_leak_after_200_attach_detach_cycles(
    cluster: Cluster, cluster_hub: hub_pb2_grpc.HubServiceStub
) -> None:
    backend = backend_stub(cluster, "build-1")
    create(cluster_hub, "att-cycle-l")
    create(cluster_hub, "att-cycle-r", "build-1")

    def cycles(count: int) -> None:
        for i in range(count):
            attached = Attacher(cluster_hub, "att-cycle-l" if i % 2 else "att-cycle-r")
            attached.step(20)
            if i % 3 == 0:
                attached.close()  # cancelled, not detached
            else:
                attached.detach()
                attached.finish()
                assert attached.error is None, attached.error

    cycles(10)
    before = stats(cluster_hub), stats(backend)
    cycles(200)

    def settled() -> bool:
        hub_now, backend_now = stats(cluster_hub), stats(backend)
        # A few tasks and descriptors come and go on their own (heartbeats,
        # /proc reads); a leak of 200 cycles would be hundreds.
        return (
            hub_now.attaches == backend_now.attaches == 0
            and hub_now.tasks <= before[0].tasks + 3
            and backend_now.tasks <= before[1].tasks + 3
            and hub_now.open_fds <= before[0].open_fds + 3
            and backend_now.open_fds <= before[1].open_fds + 3
        )

    wait_until(settled, what=f"tasks and descriptors back near {before}")
    kill(cluster_hub, "att-cycle-l")
    kill(cluster_hub, "att-cycle-r", "build-1")


# -- servers of their own: small buffers, a backend that dies, a shutdown -------


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[ServerProc, ServerProc, hub_pb2_grpc.HubServiceStub]]:
    """A backend with 64 KiB attach buffers (the least) and 2 attachers per session, and its hub."""
    backend = ServerProc(
        "small-1",
        "--attach-buffer",
        "65536",
        "--max-attachers",
        "2",
        "--config",
        str(tmp_path / "small.toml"),
        log_path=tmp_path / "small.log",
    )
    hub = ServerProc(
        "small-hub",
        "--attach-buffer",
        "65536",
        "--config",
        str(tmp_path / "hub.toml"),
        log_path=tmp_path / "hub.log",
    )
    with backend, hub:
        channel, hub_stub = stub(hub.addr)
        hub_stub.AddServer(
            hub_pb2.AddServerRequest(address=backend.url, wait=True), timeout=RPC_TIMEOUT
        )
        try:
            yield backend, hub, hub_stub
        finally:
            channel.close()


@pytest.mark.parametrize("where", WHERE)
def test_a_stalled_attacher_resyncs(
    small: tuple[ServerProc, ServerProc, hub_pb2_grpc.HubServiceStub], where: str
) -> None:
    _, _, hub = small
    name = f"att-stall-{where}"
    create(hub, name, "" if where == "local" else "small-1")
    stalled = Attacher(hub, name, read=False)
    driver = Attacher(hub, name)
    driver.step(20)
    # 8 MB of output while the client reads nothing: past gRPC's windows
    # and the 64 KiB buffer.
    driver.send(b"head -c 8000000 /dev/zero | tr '\\0' y; echo; echo done-$((2*3))\n")
    # The driver reads, but may fall behind too on a loaded machine: it
    # looks at its screen, which a resync also brings up to date.
    driver.until(lambda: "done-6" in driver.lines(), timeout=60)
    stalled.start_reading()
    # What it shows in the end: the screen, from a new snapshot and the
    # output after it.
    stalled.until(lambda: len(stalled.snapshots) >= 2 and "done-6" in stalled.lines())
    resyncs = [s.resyncs for s in stalled.snapshots]
    assert resyncs[0] == 0 and resyncs[-1] >= 1, resyncs
    assert resyncs == sorted(resyncs)
    for attached in (stalled, driver):
        attached.close()
    kill(hub, name)


def test_attachers_per_session_are_limited(
    small: tuple[ServerProc, ServerProc, hub_pb2_grpc.HubServiceStub],
) -> None:
    _, _, hub = small
    create(hub, "att-limit", "small-1", command="exec cat")
    first, second = Attacher(hub, "att-limit"), Attacher(hub, "att-limit")
    first.step(20)
    second.step(20)
    third = Attacher(hub, "att-limit")
    assert _refused(hub, third) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTACHERS")
    first.close()
    second.close()


def test_backend_dying_mid_stream_and_shutdown(
    small: tuple[ServerProc, ServerProc, hub_pb2_grpc.HubServiceStub],
) -> None:
    backend, hub_proc, hub = small
    create(hub, "att-die", "small-1")
    create(hub, "att-here")
    relayed = Attacher(hub, "att-die")
    here = Attacher(hub, "att-here")
    relayed.step(20)
    here.step(20)
    backend.stop(signal.SIGKILL)
    relayed.finish()
    assert relayed.error is not None
    assert relayed.error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert error_reason(relayed.error) == "SERVER_UNAVAILABLE"
    hub_proc.stop()
    here.finish()
    assert here.error is not None
    assert error_reason(here.error) == "SERVER_SHUTTING_DOWN"
    assert hub_proc.log_path is not None
    assert_no_traceback(hub_proc.log_path.read_text())


# -- the SDK ----------------------------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
def test_sdk_blocking_client(cluster: Cluster, where: str) -> None:
    name = f"att-sdk-{where}"
    with Client(cluster.hub.addr, timeout=RPC_TIMEOUT) as client:
        client.create_session(name=name, server=server_of(where), command="exec cat")
        with client.attach(name, rows=10, cols=33, timeout=60) as attached:
            shown = TerminalScreen(10, 33)
            shown.feed(next(attached))  # the snapshot's repaint
            assert attached.snapshot is not None and attached.snapshot.screen.cols == 33
            attached.send("sdk-says\n")
            # Each read is bounded by the call's deadline.
            while "sdk-says" not in shown.view(False).lines[1]:
                shown.feed(next(attached))
            attached.detach()
            assert list(attached) == [] and attached.exit_code is None
        client.kill_session(name)
        client.create_session(name=name, server=server_of(where), command="exit 4")
        with client.attach(name, read_only=True, timeout=60) as attached:
            chunks = list(attached)
        assert attached.exit_code == 4 and chunks
        with pytest.raises(WshRpcError) as err:
            list(client.attach("att-sdk-nobody", timeout=60))
        assert err.value.reason == "SESSION_NOT_FOUND"
        client.kill_session(name)


@pytest.mark.parametrize("where", WHERE)
async def test_sdk_async_client(cluster: Cluster, where: str) -> None:
    name = f"att-asdk-{where}"
    async with AsyncClient(cluster.hub.addr, timeout=RPC_TIMEOUT) as client:
        await client.create_session(name=name, server=server_of(where))
        async with client.attach(name, timeout=60) as attached:
            received = b""
            await attached.send("echo async-$((6*7))\n")
            await attached.resize(20, 70)
            await attached.send("stty size\n")
            async with asyncio.timeout(20):
                async for chunk in attached:
                    received += chunk
                    if b"async-42" in received and b"20 70" in received:
                        break
            await attached.detach()
            async with asyncio.timeout(20):
                rest = [chunk async for chunk in attached]
            assert b"20 70" not in b"".join(rest)
        with pytest.raises(WshRpcError) as err:
            async with client.attach(name, read_only=True, timeout=60) as watcher:
                await watcher.send("no\n")
                async with asyncio.timeout(20):
                    async for _ in watcher:
                        pass
        assert err.value.reason == "ATTACH_READ_ONLY"
        await client.kill_session(name)


@pytest.mark.parametrize("where", WHERE)
def test_malformed_requests_are_invalid_argument(cluster: Cluster, where: str) -> None:
    name = f"att-garbage-{where}"
    assert cluster.stub is not None
    create(cluster.stub, name, server_of(where), command="exec cat")
    garbage = b"\xff\xff\xff\xff\x0f"
    start = hub_pb2.AttachRequest(start=hub_pb2.AttachStart(name=name)).SerializeToString()
    with grpc.insecure_channel(cluster.hub.addr) as channel:
        attach = channel.stream_stream(
            "/wsh.v1.HubService/Attach", request_serializer=None, response_deserializer=None
        )
        for messages in ([garbage], [start, garbage]):
            with pytest.raises(grpc.RpcError) as err:
                list(attach(iter(messages), timeout=RPC_TIMEOUT))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            assert error_reason(err.value) == "MALFORMED_REQUEST"
    wait_until(lambda: stats(cluster.stub).attaches == 0, what="the streams to end")  # type: ignore[arg-type]
    kill(cluster.stub, name)


def test_the_token_is_checked(tmp_path: Path) -> None:
    token = "attach-token-0123456789"
    with ServerProc("guarded", "--token", token, "--config", str(tmp_path / "g.toml")) as server:
        channel, hub = stub(server.addr)
        try:
            wrong = (("authorization", "Bearer wrong-token-0123456789"),)
            for metadata, code in (
                (None, grpc.StatusCode.UNAUTHENTICATED),
                (wrong, grpc.StatusCode.PERMISSION_DENIED),
            ):
                refused = Attacher(hub, "any", metadata=metadata)
                refused.finish()
                assert refused.error is not None
                assert refused.error.code() == code  # type: ignore[attr-defined]
            good = (("authorization", f"Bearer {token}"),)
            hub.CreateSession(
                hub_pb2.CreateSessionRequest(name="mine", command="exec cat"),
                timeout=RPC_TIMEOUT,
                metadata=good,
            )
            allowed = Attacher(hub, "mine", metadata=good)
            allowed.step(20)
            assert allowed.error is None and allowed.snapshots
            allowed.close()
        finally:
            channel.close()


def test_no_traceback_in_the_cluster_logs(cluster: Cluster) -> None:
    """Last in the module: every stream above ended without a traceback."""
    for log in ("hub.log", "build-1.log", "build-2.log"):
        assert_no_traceback((cluster.tmp / log).read_text())
