"""WatchSessions end to end: a hub and two backends as processes on loopback.

Every event kind, for this server's sessions and for a backend's (which
come from the hub's Link, no stream to the backend), filters, server
events, and a backend that drops and comes back.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.calls import create, kill, send
from tests.cluster import RPC_TIMEOUT, Cluster, wait_health
from tests.procs import ServerProc, read_line, stub
from tests.watching import Watching
from wsh.client import Client, WshRpcError
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

W = hub_pb2
# Activity of the sessions themselves, not what these tests look at.
ACTIVITY = (W.WATCH_EVENT_SESSION_BUSY, W.WATCH_EVENT_SESSION_IDLE)
# Exits with 3 once it reads a line.
EXIT_3 = "sh -c 'read x; exit 3'"


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    with Client(cluster.hub.addr, timeout=RPC_TIMEOUT) as c:
        yield c


def lifecycle(hub: hub_pb2_grpc.HubServiceStub, watch: Watching, server: str, tag: str) -> None:
    """Create, rename, retag, resize, exit and kill one session on ``server``,
    checking the event each step gives."""
    name, renamed = f"w-{tag}", f"w-{tag}-2"
    create(hub, name, server, command=EXIT_3, tags=[tag])
    (created,) = watch.expect((W.WATCH_EVENT_SESSION_CREATED, server, name), skip=ACTIVITY)
    assert list(created.session_info.tags) == [tag]

    hub.UpdateSession(
        hub_pb2.UpdateSessionRequest(name=name, server=server, new_name=renamed, add_tags=["more"]),
        timeout=RPC_TIMEOUT,
    )
    got = watch.expect(
        (W.WATCH_EVENT_SESSION_RENAMED, server, renamed),
        (W.WATCH_EVENT_SESSION_TAGS_CHANGED, server, renamed),
        skip=ACTIVITY,
    )
    assert got[0].previous_name == name
    assert list(got[1].previous_tags) == [tag]
    assert list(got[1].session_info.tags) == sorted([tag, "more"])

    hub.ResizeSession(
        hub_pb2.ResizeSessionRequest(name=renamed, server=server, rows=30, cols=100),
        timeout=RPC_TIMEOUT,
    )
    (resized,) = watch.expect((W.WATCH_EVENT_SESSION_RESIZED, server, renamed), skip=ACTIVITY)
    assert (resized.session_info.rows, resized.session_info.cols) == (30, 100)

    send(hub, renamed, server, "go\n")
    (exited,) = watch.expect((W.WATCH_EVENT_SESSION_EXITED, server, renamed), skip=ACTIVITY)
    assert exited.session_info.exit_code == 3

    kill(hub, renamed, server)
    watch.expect((W.WATCH_EVENT_SESSION_KILLED, server, renamed), skip=ACTIVITY)


@pytest.mark.parametrize("server", ["hub", "build-1"])
def test_every_session_event_local_and_remote(
    cluster: Cluster, client: Client, server: str
) -> None:
    assert cluster.stub is not None
    with Watching(client) as watch:
        snapshot = watch.snapshot()
        servers = [e.server for e in snapshot if e.event == W.WATCH_EVENT_SERVER]
        assert servers == ["hub", "build-1", "build-2"]
        assert all(
            e.server_info.health == W.SERVER_HEALTH_HEALTHY
            for e in snapshot
            if e.event == W.WATCH_EVENT_SERVER
        )
        lifecycle(cluster.stub, watch, server, f"t-{server}")


def test_snapshot_lists_sessions_in_scope(cluster: Cluster, client: Client) -> None:
    hub = cluster.stub
    assert hub is not None
    create(hub, "snap-a", "build-2", tags=["snap"])
    create(hub, "snap-b", "", tags=["snap"])
    create(hub, "snap-c", "build-1", tags=["other"])
    try:
        with Watching(client, tags=["snap"]) as watch:
            sessions = {
                (e.server, e.session): e.session_info
                for e in watch.snapshot()
                if e.event == W.WATCH_EVENT_SESSION
            }
        assert set(sessions) == {("build-2", "snap-a"), ("hub", "snap-b")}
        assert sessions["build-2", "snap-a"].server == "build-2"
    finally:
        for name, server in (("snap-a", "build-2"), ("snap-b", ""), ("snap-c", "build-1")):
            kill(hub, name, server)


def test_filters(cluster: Cluster, client: Client) -> None:
    hub = cluster.stub
    assert hub is not None
    with (
        Watching(client, server="build-2") as on_backend,
        Watching(client, server="hub") as here,
        Watching(client, tags=["wanted"]) as tagged,
    ):
        snapshots = [w.snapshot() for w in (on_backend, here, tagged)]
        assert [e.server for e in snapshots[0]] == ["build-2"]
        assert [e.server for e in snapshots[1]] == ["hub"]
        assert [e.server for e in snapshots[2]] == ["hub", "build-1", "build-2"]

        create(hub, "f-1", "build-1", tags=["wanted"])
        create(hub, "f-2", "build-2")
        create(hub, "f-3", "", tags=["nope"])
        tagged.expect((W.WATCH_EVENT_SESSION_CREATED, "build-1", "f-1"), skip=ACTIVITY)
        on_backend.expect((W.WATCH_EVENT_SESSION_CREATED, "build-2", "f-2"), skip=ACTIVITY)
        here.expect((W.WATCH_EVENT_SESSION_CREATED, "hub", "f-3"), skip=ACTIVITY)

        # A retag is told to a watcher whose scope the session enters or leaves.
        for name, server, add, remove in (
            ("f-3", "", ["wanted"], []),
            ("f-1", "build-1", [], ["wanted"]),
        ):
            hub.UpdateSession(
                hub_pb2.UpdateSessionRequest(
                    name=name, server=server, add_tags=add, remove_tags=remove
                ),
                timeout=RPC_TIMEOUT,
            )
        tagged.expect(
            (W.WATCH_EVENT_SESSION_TAGS_CHANGED, "hub", "f-3"),
            (W.WATCH_EVENT_SESSION_TAGS_CHANGED, "build-1", "f-1"),
            skip=ACTIVITY,
        )
        for name, server in (("f-1", "build-1"), ("f-2", "build-2"), ("f-3", "")):
            kill(hub, name, server)
        tagged.expect((W.WATCH_EVENT_SESSION_KILLED, "hub", "f-3"), skip=ACTIVITY)
        on_backend.expect((W.WATCH_EVENT_SESSION_KILLED, "build-2", "f-2"), skip=ACTIVITY)
        here.expect(
            (W.WATCH_EVENT_SESSION_TAGS_CHANGED, "hub", "f-3"),
            (W.WATCH_EVENT_SESSION_KILLED, "hub", "f-3"),
            skip=ACTIVITY,
        )
        # Nothing out of scope came in between, nor after.
        for watch in (on_backend, here, tagged):
            assert watch.quiet(0.5, skip=ACTIVITY) == []


def test_bad_requests(client: Client) -> None:
    with pytest.raises(WshRpcError) as info, client.watch(server="nowhere") as stream:
        next(stream)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.reason == "SERVER_NOT_FOUND"
    with pytest.raises(WshRpcError) as info, client.watch(tags=["bad tag!"]) as stream:
        next(stream)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_session_made_directly_on_a_backend(cluster: Cluster, client: Client) -> None:
    """A backend's own events reach the hub's watchers by its Link."""
    channel, backend = stub(cluster.backends["build-2"].addr)
    with channel, Watching(client) as watch:
        watch.snapshot()
        create(backend, "direct", "")
        watch.expect((W.WATCH_EVENT_SESSION_CREATED, "build-2", "direct"), skip=ACTIVITY)
        kill(backend, "direct")
        watch.expect((W.WATCH_EVENT_SESSION_KILLED, "build-2", "direct"), skip=ACTIVITY)


def test_expired(tmp_path: Path) -> None:
    """An exited session forgotten after its retention: EXPIRED, locally and by the Link."""
    with (
        ServerProc("exp-backend", "--exited-retention", "1") as backend,
        ServerProc("exp-hub", "--exited-retention", "1") as hub_proc,
        Client(hub_proc.addr, timeout=RPC_TIMEOUT) as client,
    ):
        client.add_server(backend.url, wait=True)
        with Watching(client) as watch:
            watch.snapshot()
            for server in ("exp-hub", "exp-backend"):
                client.create_session("short", server=server, command="true")
                watch.expect(
                    (W.WATCH_EVENT_SESSION_CREATED, server, "short"),
                    (W.WATCH_EVENT_SESSION_EXITED, server, "short"),
                    (W.WATCH_EVENT_SESSION_EXPIRED, server, "short"),
                    skip=ACTIVITY,
                )


def test_server_added_and_removed(tmp_path: Path) -> None:
    with (
        ServerProc("sa-backend") as backend,
        ServerProc("sa-hub") as hub_proc,
        Client(hub_proc.addr, timeout=RPC_TIMEOUT) as client,
        Client(backend.addr, timeout=RPC_TIMEOUT) as direct,
    ):
        direct.create_session("there", command="cat")
        with Watching(client) as watch:
            assert [e.server for e in watch.snapshot()] == ["sa-hub"]
            client.add_server(backend.url, wait=True)
            added = watch.next()
            assert added.event == W.WATCH_EVENT_SERVER_ADDED
            assert added.server_info.address == backend.url
            watch.expect(
                (W.WATCH_EVENT_SERVER_HEALTH_CHANGED, "sa-backend", ""),
                (W.WATCH_EVENT_SESSION_CREATED, "sa-backend", "there"),
                skip=ACTIVITY,
            )
            client.remove_server("sa-backend")
            watch.expect(
                (W.WATCH_EVENT_SESSION_REMOVED, "sa-backend", "there"),
                (W.WATCH_EVENT_SERVER_REMOVED, "sa-backend", ""),
                skip=ACTIVITY,
            )


def test_backend_flap_resync(tmp_path: Path) -> None:
    """A backend killed and restarted on the same port with other sessions:
    the watcher gets its health and the differences, each once."""
    with Cluster(tmp_path, backends=("flap",)) as running:
        hub = running.stub
        assert hub is not None
        proc = running.backends["flap"]
        for name in ("same", "dies"):
            create(hub, name, "flap")
        with Client(running.hub.addr, timeout=RPC_TIMEOUT) as client, Watching(client) as watch:
            snapshot = watch.snapshot()
            assert {e.session for e in snapshot if e.event == W.WATCH_EVENT_SESSION} == {
                "same",
                "dies",
            }
            proc.stop(signal.SIGKILL)
            (down,) = watch.expect(
                (W.WATCH_EVENT_SERVER_HEALTH_CHANGED, "flap", ""), skip=ACTIVITY, timeout=20
            )
            assert down.server_info.health == W.SERVER_HEALTH_UNAVAILABLE
            # Same port, new process: its sessions are new ones (one has an
            # old name), made before or after the hub links again.
            proc.listen = proc.addr
            proc.start()
            channel, backend = stub(proc.addr)
            with channel:
                create(backend, "same", "")
                create(backend, "new", "")
            wait_health(hub, W.SERVER_HEALTH_HEALTHY, hostname="flap")
            time.sleep(0.5)
            events = [e for e in watch.quiet(1.0) if e.event not in ACTIVITY]
    got = sorted((W.WatchEvent.Name(e.event), e.session) for e in events)
    assert got == sorted(
        [
            ("WATCH_EVENT_SERVER_HEALTH_CHANGED", ""),
            ("WATCH_EVENT_SESSION_REMOVED", "same"),
            ("WATCH_EVENT_SESSION_REMOVED", "dies"),
            ("WATCH_EVENT_SESSION_CREATED", "same"),
            ("WATCH_EVENT_SESSION_CREATED", "new"),
        ]
    ), got
    # The old "same" goes before the new one comes.
    order = [(e.event, e.session) for e in events if e.session == "same"]
    assert order == [
        (W.WATCH_EVENT_SESSION_REMOVED, "same"),
        (W.WATCH_EVENT_SESSION_CREATED, "same"),
    ]


def wsh_watch(addr: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "wsh", "--addr", addr, "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


# A guard, not a measure: the first line waits for the interpreter to start,
# which other CLI tests allow a minute on a loaded machine too.
START_TIMEOUT_S = 60.0


def json_line(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> dict[str, object]:
    assert proc.stdout is not None
    line = read_line(proc.stdout, timeout)
    assert line, proc.stderr.read() if proc.stderr else b""
    value: dict[str, object] = json.loads(line)
    return value


def test_cli_watch_json_lines_until_interrupted(cluster: Cluster) -> None:
    hub = cluster.stub
    assert hub is not None
    proc = wsh_watch(cluster.hub.addr, "--json", "--tag", "cli")
    try:
        first = [json_line(proc, START_TIMEOUT_S), *(json_line(proc) for _ in range(3))]
        assert [(e["event"], e["server"]) for e in first] == [
            ("WATCH_EVENT_SERVER", "hub"),
            ("WATCH_EVENT_SERVER", "build-1"),
            ("WATCH_EVENT_SERVER", "build-2"),
            ("WATCH_EVENT_SYNCED", ""),
        ]
        create(hub, "cli-1", "build-1", tags=["cli"])
        created = json_line(proc)
        assert (created["event"], created["server"], created["session"]) == (
            "WATCH_EVENT_SESSION_CREATED",
            "build-1",
            "cli-1",
        )
        assert created["session_info"]["tags"] == ["cli"]  # type: ignore[index]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        with contextlib.suppress(grpc.RpcError):  # not created if the test failed earlier
            kill(hub, "cli-1", "build-1")


def test_cli_watch_ends_on_a_closed_pipe(cluster: Cluster) -> None:
    hub = cluster.stub
    assert hub is not None
    proc = wsh_watch(cluster.hub.addr, "--server", "hub")
    try:
        assert proc.stdout is not None
        assert read_line(proc.stdout, START_TIMEOUT_S).startswith(b"server ")
        proc.stdout.close()
        # The next lines have nowhere to go.
        create(hub, "pipe-1", "")
        assert proc.wait(15) == 141
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        with contextlib.suppress(grpc.RpcError):  # not created if the test failed earlier
            kill(hub, "pipe-1", "")


def test_token_is_required() -> None:
    token = "watch-test-token-0123456789"
    with ServerProc("tok", "--token", token) as proc:
        with Client(proc.addr, token="", timeout=RPC_TIMEOUT) as anonymous:
            with pytest.raises(WshRpcError) as info, anonymous.watch() as stream:
                next(stream)
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        with (
            Client(proc.addr, token=token, timeout=RPC_TIMEOUT) as client,
            Watching(client) as watch,
        ):
            assert [e.server for e in watch.snapshot()] == ["tok"]


def test_shutdown_ends_watches() -> None:
    with ServerProc("going") as proc, Client(proc.addr, timeout=RPC_TIMEOUT) as client:
        watch = Watching(client)
        watch.snapshot()
        assert proc.stop() == 0
        # Ended with a reason, not cancelled once the shutdown grace ran out.
        with pytest.raises(WshRpcError) as info:
            watch.next()
        assert info.value.reason == "SERVER_SHUTTING_DOWN"
        watch.close()


@pytest.mark.parametrize("server", ["hub", "build-2"])
def test_busy_and_idle(cluster: Cluster, client: Client, server: str) -> None:
    hub = cluster.stub
    assert hub is not None
    name = f"act-{server}"
    with Watching(client, tags=[name]) as watch:
        watch.snapshot()
        create(hub, name, server, command="cat", tags=[name])
        watch.expect((W.WATCH_EVENT_SESSION_CREATED, server, name))
        (settled,) = watch.expect((W.WATCH_EVENT_SESSION_IDLE, server, name))
        assert settled.quiet
        generation = send(hub, name, server, "x\n")
        busy, idle = watch.expect(
            (W.WATCH_EVENT_SESSION_BUSY, server, name), (W.WATCH_EVENT_SESSION_IDLE, server, name)
        )
        assert settled.generation < busy.generation <= generation <= idle.generation
        assert idle.quiet and idle.quiet_ms > 0
    # A settled session says so in a snapshot.
    with Watching(client, tags=[name]) as again:
        (entry,) = [e for e in again.snapshot() if e.event == W.WATCH_EVENT_SESSION]
        assert entry.quiet
    kill(hub, name, server)
