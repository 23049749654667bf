"""End-to-end restarts: a hub and two backends as processes on loopback.

Hub restart: the new process reads the same config file, links to the
backends listed there on its own, and finds their sessions as they were
(same names, same pids, same screens). Backend restart: the hub sees the
backend go UNAVAILABLE, reconnects once it is back (a new server_id), and
the sessions that died with the old process are gone, not stale.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest

from tests.calls import expect_error
from tests.cluster import RPC_TIMEOUT, Cluster, server_entry, wait_health, wait_until
from tests.procs import stub
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e

BASH = "bash --norc --noprofile"
SHELL_ENV = {"PS1": "$ ", "HISTFILE": ""}
SIGNALS = pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"]
)


def create(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str) -> types_pb2.Session:
    """A bash session that has echoed its own name, once its prompt has settled."""
    request = hub_pb2.CreateSessionRequest(name=name, server=server, command=BASH, env=SHELL_ENV)
    session = hub.CreateSession(request, timeout=RPC_TIMEOUT).session
    echo(hub, name, server, f"hello-{name}")
    return session


def echo(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str, line: str) -> types_pb2.Idle:
    """Type ``echo line`` and wait, from the input's generation, until the line shows."""
    generation = hub.SendInput(
        hub_pb2.SendInputRequest(name=name, server=server, data=f"echo {line}\n".encode()),
        timeout=RPC_TIMEOUT,
    ).generation
    deadline = time.monotonic() + 15
    while True:
        request = hub_pb2.AwaitIdleRequest(
            name=name, server=server, timeout_ms=100, max_wait_ms=10_000
        )
        request.last_generation = generation
        idle = hub.AwaitIdle(request, timeout=RPC_TIMEOUT).idle
        if line in idle.screen.lines:
            return idle
        # Settled between the echoed command and its output: wait on.
        assert time.monotonic() < deadline, f"{line!r} never showed on {server}/{name}"
        generation = idle.generation


def listed(hub: hub_pb2_grpc.HubServiceStub, server: str = "") -> dict[tuple[str, str], int]:
    """(server, name) -> pid of every session the hub lists."""
    sessions = hub.ListSessions(hub_pb2.ListSessionsRequest(server=server), timeout=RPC_TIMEOUT)
    return {(s.server, s.name): s.pid for s in sessions.sessions}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie nobody reaps (an orphan in a container
    whose init does not reap) counts as ended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def wait_ended(pid: int) -> None:
    wait_until(lambda: not alive(pid), 10, f"process {pid} to end")


def backend_links(addr: str) -> int:
    """How many hub Links a server holds open, from its own stats."""
    channel, direct = stub(addr)
    with channel:
        info = direct.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
    return info.stats.links


def wait_one_link(addr: str) -> None:
    """Until the server at ``addr`` holds exactly one Link: a dead hub's is closed."""
    wait_until(lambda: backend_links(addr) == 1, 20, f"one Link on {addr}")


@SIGNALS
def test_hub_restart_restores_backends_and_their_sessions(tmp_path: Path, sig: int) -> None:
    with Cluster(tmp_path) as c:
        hub = c.stub
        assert hub is not None
        for hostname in c.backends:
            for i in range(3):
                create(hub, f"{hostname}-s{i}", hostname)
        create(hub, "on-hub", "")
        before = listed(hub)
        hub_session_pid = before.pop(("hub", "on-hub"))
        assert len(before) == 6
        config_before = c.hub_config.read_text()
        old_server_id = c.hub.server_id

        assert c.channel is not None
        c.channel.close()
        c.hub.stop(sig)
        # The hub's own session ends with it, killed (SIGTERM) or hung up (SIGKILL).
        wait_ended(hub_session_pid)

        # The same config file and --hostname; a new port, which backends never need.
        c.hub.start()
        started = time.monotonic()
        c.channel, hub = stub(c.hub.addr)
        c.stub = hub
        assert c.hub.server_id != old_server_id
        # Nothing but polling ListServers: the config alone brings the backends back.
        for hostname, proc in c.backends.items():
            health = wait_health(hub, hub_pb2.SERVER_HEALTH_HEALTHY, hostname=hostname, timeout=15)
            assert health.address == proc.url
            assert health.server_id == proc.server_id, "the backend itself did not restart"
        print(f"hub restart to both backends HEALTHY within {time.monotonic() - started:.2f}s")
        assert c.hub_config.read_text() == config_before

        # Every backend session as it was: same names and pids, on the same servers.
        assert listed(hub) == before
        for hostname in c.backends:
            entry = server_entry(hub, hostname)
            assert entry is not None and entry.session_count == 3
        # Usable through the new hub, with the screen they had before it.
        for (server, name), pid in before.items():
            session = hub.GetSession(
                hub_pb2.GetSessionRequest(name=name, server=server), timeout=RPC_TIMEOUT
            ).session
            assert (session.pid, session.state) == (pid, types_pb2.SESSION_STATE_RUNNING)
            idle = echo(hub, name, server, f"again-{name}")
            assert f"hello-{name}" in idle.screen.lines
        # The old hub's Link is gone from each backend, the new one is its only one.
        for proc in c.backends.values():
            wait_one_link(proc.addr)


@SIGNALS
def test_backend_restart_is_noticed_and_its_sessions_reported_gone(
    tmp_path: Path, sig: int
) -> None:
    with Cluster(tmp_path) as c:
        hub = c.stub
        assert hub is not None
        victim = c.backends["build-1"]
        lost = [f"lost-{i}" for i in range(3)]
        lost_pids = [create(hub, name, "build-1").pid for name in lost]
        create(hub, "kept", "build-2")
        create(hub, "home", "")
        old_server_id = victim.server_id

        victim.stop(sig)
        stopped = time.monotonic()
        entry = wait_health(hub, hub_pb2.SERVER_HEALTH_UNAVAILABLE, hostname="build-1", timeout=10)
        print(f"backend stop to UNAVAILABLE within {time.monotonic() - stopped:.2f}s")
        assert entry.last_error
        assert entry.session_count == 0
        expect_error(
            lambda: hub.GetSession(
                hub_pb2.GetSessionRequest(name="lost-0", server="build-1"), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.UNAVAILABLE,
            "SERVER_UNAVAILABLE",
        )
        assert set(listed(hub)) == {("build-2", "kept"), ("hub", "home")}
        # Its shells did not outlive it: reaped on SIGTERM, hung up on SIGKILL.
        for pid in lost_pids:
            wait_ended(pid)

        # Back on the same address: the hub reconnects without being asked.
        victim.listen = victim.addr
        victim.start()
        restarted = time.monotonic()
        entry = wait_health(hub, hub_pb2.SERVER_HEALTH_HEALTHY, hostname="build-1", timeout=15)
        print(f"backend restart to HEALTHY within {time.monotonic() - restarted:.2f}s")
        assert entry.server_id == victim.server_id != old_server_id
        assert entry.session_count == 0
        assert entry.last_error == ""

        # The lost sessions are reported gone, not stale; the others are untouched.
        assert listed(hub, "build-1") == {}
        assert set(listed(hub)) == {("build-2", "kept"), ("hub", "home")}
        for name in lost:
            expect_error(
                lambda name=name: hub.GetSession(
                    hub_pb2.GetSessionRequest(name=name, server="build-1"), timeout=RPC_TIMEOUT
                ),
                grpc.StatusCode.NOT_FOUND,
                "SESSION_NOT_FOUND",
            )
        echo(hub, "kept", "build-2", "still-here")
        echo(hub, "home", "", "still-here")
        # The restarted backend works, and a lost name is free again there.
        reborn = create(hub, "lost-0", "build-1")
        assert reborn.pid not in lost_pids
        assert set(listed(hub, "build-1")) == {("build-1", "lost-0")}
        # The inventory the hub keeps from the Link follows the new session too.
        wait_until(
            lambda: getattr(server_entry(hub, "build-1"), "session_count", 0) == 1,
            10,
            "session_count 1 on build-1",
        )
        assert backend_links(victim.addr) == 1


def hub_stats(hub: hub_pb2_grpc.HubServiceStub) -> hub_pb2.ServerStats:
    return hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT).stats


def test_repeated_backend_restarts_leak_nothing_on_the_hub(tmp_path: Path) -> None:
    """Each reconnect is a new Link stream and heartbeat task over the same
    channel; none of them may stay behind on the hub."""
    with Cluster(tmp_path, backends=("flaky",)) as c:
        hub = c.stub
        assert hub is not None
        flaky = c.backends["flaky"]
        flaky.listen = flaky.addr
        create(hub, "warm", "flaky")  # the hub has forwarded calls before the baseline
        hub.KillSession(
            hub_pb2.KillSessionRequest(name="warm", server="flaky"), timeout=RPC_TIMEOUT
        )
        baseline = hub_stats(hub)
        server_ids = {flaky.server_id}
        for round_ in range(4):
            create(hub, f"gone-{round_}", "flaky")
            flaky.stop(signal.SIGKILL if round_ % 2 else signal.SIGTERM)
            wait_health(hub, hub_pb2.SERVER_HEALTH_UNAVAILABLE, hostname="flaky", timeout=10)
            flaky.start()
            entry = wait_health(hub, hub_pb2.SERVER_HEALTH_HEALTHY, hostname="flaky", timeout=15)
            assert entry.server_id == flaky.server_id not in server_ids
            server_ids.add(flaky.server_id)
            assert listed(hub) == {}

        # Settled: the same descriptors and tasks as before the first restart.
        def back_to_baseline() -> bool:
            now = hub_stats(hub)
            return (now.open_fds, now.tasks, now.child_processes) == (
                baseline.open_fds,
                baseline.tasks,
                baseline.child_processes,
            )

        try:
            wait_until(back_to_baseline, 10, "the hub's stats to return to the baseline")
        except TimeoutError:
            pytest.fail(f"hub stats {baseline} -> {hub_stats(hub)}")
