"""End-to-end: a backend behind a real network link that the test breaks.

The hub and a backend "near" run in one network namespace, the backend
"far" in another; a veth pair is the only path between them (see
``tests/netns.py``). The tests cut that link (link down, nftables drop),
restore it, slow it down (tbf), make it lossy (nftables random drop) and
flap it, and check what the hub makes of it: far UNAVAILABLE within the
keepalive bound, calls failing fast, the rest of the cluster carrying on,
far HEALTHY again by itself with its sessions intact, and no leaks.

Needs root (network namespaces); skipped with the reason otherwise.
``bench/netfaults.py`` is the long version (more flaps, more samples).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.calls import await_idle, create, send
from tests.cluster import wait_until
from tests.netns import FaultCluster, HealthSampler, NetPair, RaceReader, Unsupported
from tests.procs import error_reason
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e

RPC_TIMEOUT = 20.0
HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY
UNAVAILABLE = hub_pb2.SERVER_HEALTH_UNAVAILABLE
# The hub notices a silent link within its keepalive (1 s ping, 1 s timeout)
# or heartbeat (3 s of silence) bound; these limits leave room for a loaded
# 2-core CI machine, and the measured values are printed.
CUT_NOTICED_S = 8.0
RESTORED_S = 10.0
FAIL_FAST_S = 1.0
# The long run is bench/netfaults.py; here a few flaps keep the test short.
FLAPS = int(os.environ.get("WSH_NETFAULT_FLAPS", "6"))
# Hub resources may differ this much from the baseline once settled.
FD_SLACK = 2
TASK_SLACK = 3


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f}s"


# -- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def net() -> Iterator[NetPair]:
    pair = NetPair()
    try:
        pair.create()
    except Unsupported as exc:
        pytest.skip(f"cannot build a private network for the fault tests: {exc}")
    try:
        yield pair
    finally:
        pair.destroy()


@pytest.fixture(scope="module")
def cluster(net: NetPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    tmp = tmp_path_factory.mktemp("netfaults")
    # A Unix socket path must stay under 108 bytes; pytest's tmp may not.
    sock_dir = Path(tempfile.mkdtemp(prefix="wshnf-"))
    running = FaultCluster(net, tmp, "netfaults-" + secrets.token_hex(12), sock_dir)
    try:
        running.start()
        yield running
    finally:
        try:
            running.stop()
        finally:
            shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(cluster: FaultCluster) -> hub_pb2_grpc.HubServiceStub:
    return cluster.stub


@pytest.fixture(autouse=True)
def healed(cluster: FaultCluster) -> Iterator[None]:
    """Each test starts and ends with a clean link and far HEALTHY, even after a failure."""
    yield
    cluster.net.heal()
    wait_until(lambda: cluster.health("far") == HEALTHY, RESTORED_S * 2, "far HEALTHY again")


# -- helpers ------------------------------------------------------------------


def run_and_wait(
    hub: hub_pb2_grpc.HubServiceStub, name: str, server: str, line: str
) -> types_pb2.Idle:
    """Send a command line and wait until its output has settled."""
    generation = send(hub, name, server, line + "\n")
    return await_idle(hub, name, server, last=generation)


def screen_lines(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str) -> list[str]:
    req = hub_pb2.GetScreenRequest(name=name, server=server)
    return list(hub.GetScreen(req, timeout=RPC_TIMEOUT).screen.lines)


def get_session(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str) -> types_pb2.Session:
    req = hub_pb2.GetSessionRequest(name=name, server=server)
    return hub.GetSession(req, timeout=RPC_TIMEOUT).session


def settle_of(server: str, generation: int) -> Callable[[types_pb2.Idle], bool]:
    """Matches a race message: ``server``'s session settled at ``generation`` or later."""
    return lambda idle: idle.server == server and idle.generation >= generation


def timed_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` holds (polled every 50 ms); TimeoutError past ``timeout``."""
    start = time.monotonic()
    wait_until(predicate, timeout, what)
    return time.monotonic() - start


def expect_unavailable(call: Callable[[], object]) -> float:
    """The call fails with UNAVAILABLE / SERVER_UNAVAILABLE; returns how long it took."""
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        call()
    elapsed = time.monotonic() - start
    err = info.value
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert error_reason(err) == "SERVER_UNAVAILABLE", err.details()
    return elapsed


# -- the tests ----------------------------------------------------------------


@pytest.mark.parametrize("fault", ["link-down", "nft-drop"])
def test_cut_link_marks_far_unavailable_and_restore_heals_it(
    cluster: FaultCluster, hub: hub_pb2_grpc.HubServiceStub, fault: str
) -> None:
    net = cluster.net
    tag = f"cut-{fault}"
    names = {server: f"{server}-{fault}" for server in ("far", "near", "hub")}
    for server, name in names.items():
        create(hub, name, server, tags=[tag])
        run_and_wait(hub, name, server, f"echo marker-{server}-{fault}")
    far_name = names["far"]
    far_before = get_session(hub, far_name, "far")
    far_screen = screen_lines(hub, far_name, "far")
    assert f"marker-far-{fault}" in far_screen

    # Open when the link goes: an AwaitIdle on far waiting for new activity
    # (none comes: it could only end on its 60 s max_wait), and a race over
    # sessions on far, near and the hub.
    idle_req = hub_pb2.AwaitIdleRequest(
        name=far_name,
        server="far",
        timeout_ms=300,
        max_wait_ms=60_000,
        last_generation=far_before.generation,
    )
    pending = hub.AwaitIdle.future(idle_req, timeout=90)
    race = RaceReader(hub, [tag])
    try:
        settled: set[str] = set()
        while len(settled) < 3:
            idle = race.until(lambda _i: True, 15, "initial settles")
            settled.add(idle.server)
        assert settled == {"far", "near", "hub"}
        time.sleep(0.5)  # the AwaitIdle is in the backend now
        assert not pending.done(), pending.exception()

        cut_at = time.monotonic()
        net.link_down() if fault == "link-down" else net.block()
        noticed_s = timed_until(
            lambda: cluster.health("far") == UNAVAILABLE, CUT_NOTICED_S, "far UNAVAILABLE"
        )
        far_entry = cluster.healths()["far"]
        assert far_entry.last_error, far_entry

        # The AwaitIdle that was open ends, with SERVER_UNAVAILABLE, not at max_wait.
        try:
            pending.result(timeout=max(0.1, CUT_NOTICED_S - (time.monotonic() - cut_at)))
        except grpc.FutureTimeoutError:
            pytest.fail(f"AwaitIdle through the cut link still open {CUT_NOTICED_S}s after the cut")
        except grpc.RpcError as err:
            await_ended_s = time.monotonic() - cut_at
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
            assert error_reason(err) == "SERVER_UNAVAILABLE", err.details()
        else:
            pytest.fail("AwaitIdle through the cut link returned a result")

        # New calls on far fail fast.
        fail_fast = [
            expect_unavailable(lambda: get_session(hub, far_name, "far")),
            expect_unavailable(lambda: send(hub, far_name, "far", "echo lost\n")),
            expect_unavailable(lambda: await_idle(hub, far_name, "far")),
        ]
        assert max(fail_fast) < FAIL_FAST_S, fail_fast

        # The hub and near carry on: calls, the cluster listing, the open race.
        assert cluster.health("near") == HEALTHY
        started = time.monotonic()
        listed = hub.ListSessions(hub_pb2.ListSessionsRequest(tags=[tag]), timeout=RPC_TIMEOUT)
        list_s = time.monotonic() - started
        assert sorted(s.server for s in listed.sessions) == ["hub", "near"]
        assert list_s < FAIL_FAST_S, list_s
        for server in ("near", "hub"):
            generation = send(hub, names[server], server, f"echo during-cut-{server}\n")
            idle = race.until(
                settle_of(server, generation),
                15,
                f"a settle of {server} during the cut",
            )
            assert f"during-cut-{server}" in idle.screen.lines

        # Restore: far comes back by itself, with its session as it was.
        restore_at = time.monotonic()
        net.heal()
        healed_s = timed_until(
            lambda: cluster.health("far") == HEALTHY, RESTORED_S, "far HEALTHY after restore"
        )
        far_after = get_session(hub, far_name, "far")
        assert far_after.pid == far_before.pid
        assert far_after.state == types_pb2.SESSION_STATE_RUNNING
        assert screen_lines(hub, far_name, "far") == far_screen
        listed = hub.ListSessions(hub_pb2.ListSessionsRequest(tags=[tag]), timeout=RPC_TIMEOUT)
        assert sorted(s.server for s in listed.sessions) == ["far", "hub", "near"]
        # Far rejoins the race that stayed open through the cut.
        generation = send(hub, far_name, "far", "echo after-restore\n")
        idle = race.until(
            settle_of("far", generation),
            15,
            "a settle of far after the restore",
        )
        assert "after-restore" in idle.screen.lines
        rejoin_s = time.monotonic() - restore_at
    finally:
        race.close()
        pending.cancel()
    print(
        f"\n[{fault}] cut -> far UNAVAILABLE {fmt_s(noticed_s)}; "
        f"open AwaitIdle ended {fmt_s(await_ended_s)} after the cut; "
        f"new calls on far failed in {max(fail_fast) * 1000:.1f} ms (slowest); "
        f"cluster ListSessions {list_s * 1000:.1f} ms; "
        f"restore -> HEALTHY {fmt_s(healed_s)}, far back in the open race {fmt_s(rejoin_s)}"
    )
    assert noticed_s < CUT_NOTICED_S and await_ended_s < CUT_NOTICED_S


def assert_all_healthy(sampler: HealthSampler) -> None:
    assert not sampler.errors, sampler.errors
    assert len(sampler.samples) >= 5, f"only {len(sampler.samples)} health samples"
    bad = sampler.not_healthy()
    assert not bad, f"{len(bad)} of {len(sampler.samples)} samples not HEALTHY: {bad[:5]}"


def round_trip(hub: hub_pb2_grpc.HubServiceStub, name: str, marker: str) -> float:
    """send, await idle, read screen and scrollback on far; returns seconds taken."""
    start = time.monotonic()
    idle = run_and_wait(hub, name, "far", f"echo {marker}")
    assert marker in idle.screen.lines
    assert marker in screen_lines(hub, name, "far")
    page = hub.GetScrollback(
        hub_pb2.GetScrollbackRequest(name=name, server="far", offset=0, limit=200),
        timeout=RPC_TIMEOUT,
    )
    assert page.total_lines >= 1
    return time.monotonic() - start


def test_slow_link_calls_complete_and_far_stays_healthy(
    cluster: FaultCluster, hub: hub_pb2_grpc.HubServiceStub
) -> None:
    name = "far-slow"
    create(hub, name, "far", tags=["slow"])
    await_idle(hub, name, "far")
    cluster.net.slow("256kbit", "16kb", "400ms")
    with HealthSampler(cluster) as sampler:
        trips = [round_trip(hub, name, f"slow-{i}") for i in range(5)]
        # Bulk through the slow link: a ~24 KB scrollback page, about 0.8 s at
        # 256 kbit/s. A reply that holds the link for longer than the heartbeat
        # bound (3 s) delays the Link's heartbeats behind it: bench/netfaults.py
        # measures that edge (60 KB at 64 kbit/s).
        run_and_wait(hub, name, "far", "for i in $(seq 300); do printf '%079d\\n' $i; done")
        started = time.monotonic()
        page = hub.GetScrollback(
            hub_pb2.GetScrollbackRequest(name=name, server="far", offset=0, limit=1000),
            timeout=60,
        )
        bulk_s = time.monotonic() - started
        bulk_bytes = page.ByteSize()
        assert any(line.endswith("300") for line in page.lines)
        trips.append(round_trip(hub, name, "slow-after-bulk"))
        time.sleep(1.0)  # a few more heartbeats under the limit
    assert_all_healthy(sampler)
    print(
        f"\n[slow 256kbit] round trips {', '.join(fmt_s(t) for t in trips)}; "
        f"scrollback page {bulk_bytes // 1024} KiB in {fmt_s(bulk_s)}; "
        f"far HEALTHY in all {len(sampler.samples)} samples, "
        f"max heartbeat latency {sampler.max_latency_ms:.0f} ms"
    )


def test_lossy_link_calls_complete_and_far_stays_healthy(
    cluster: FaultCluster, hub: hub_pb2_grpc.HubServiceStub
) -> None:
    name = "far-lossy"
    create(hub, name, "far", tags=["lossy"])
    await_idle(hub, name, "far")
    percent = 10
    cluster.net.lossy(percent)
    with HealthSampler(cluster) as sampler:
        trips = [round_trip(hub, name, f"lossy-{i}") for i in range(10)]
        time.sleep(2.0)
    assert_all_healthy(sampler)
    print(
        f"\n[lossy {percent}% each way] round trips min {fmt_s(min(trips))} "
        f"max {fmt_s(max(trips))}; far HEALTHY in all {len(sampler.samples)} samples, "
        f"max heartbeat latency {sampler.max_latency_ms:.0f} ms"
    )


def wait_outcome(future: grpc.Future[hub_pb2.AwaitIdleResponse]) -> str:
    """OK, or the ErrorInfo reason (or status code) an AwaitIdle future ended with."""
    err = future.exception()
    if err is None:
        return "OK"
    assert isinstance(err, grpc.RpcError), err
    return error_reason(err) or err.code().name


def settled_stats(cluster: FaultCluster) -> hub_pb2.ServerStats:
    """Hub stats once nothing is in flight: no races, two stable readings."""
    previous = None
    deadline = time.monotonic() + 20
    while True:
        stats = cluster.hub_stats()
        if (
            stats.races == 0
            and previous is not None
            and ((stats.open_fds, stats.tasks) == (previous.open_fds, previous.tasks))
        ):
            return stats
        if time.monotonic() > deadline:
            return stats
        previous = stats
        time.sleep(0.5)


def test_flapping_link_leaks_nothing(
    cluster: FaultCluster, hub: hub_pb2_grpc.HubServiceStub
) -> None:
    net = cluster.net
    name = "far-flap"
    create(hub, name, "far", tags=["flap"])
    create(hub, "near-flap", "near", tags=["flap"])
    far_before = get_session(hub, name, "far")
    run_and_wait(hub, name, "far", "echo before-flaps")
    base = settled_stats(cluster)
    far_base = cluster.far_stats()

    # Streams open through the flaps: a cluster-wide race and AwaitIdles on far.
    race = RaceReader(hub, ["flap"])
    waits: list[grpc.Future[hub_pb2.AwaitIdleResponse]] = []
    noticed: list[float] = []
    healed: list[float] = []
    try:
        for flap in range(FLAPS):
            if cluster.health("far") == HEALTHY:
                idle_req = hub_pb2.AwaitIdleRequest(
                    name=name,
                    server="far",
                    timeout_ms=300,
                    max_wait_ms=60_000,
                    last_generation=get_session(hub, name, "far").generation,
                )
                waits.append(hub.AwaitIdle.future(idle_req, timeout=90))
            net.link_down()
            if flap % 2 == 0:
                # A long flap: down until the hub notices, up until HEALTHY again.
                noticed.append(
                    timed_until(
                        lambda: cluster.health("far") == UNAVAILABLE, CUT_NOTICED_S, "UNAVAILABLE"
                    )
                )
                net.link_up()
                healed.append(
                    timed_until(lambda: cluster.health("far") == HEALTHY, RESTORED_S, "HEALTHY")
                )
            else:
                # A short one: shorter than the keepalive bound, maybe unnoticed.
                time.sleep(0.4)
                net.link_up()
                time.sleep(0.4)
        wait_until(lambda: cluster.health("far") == HEALTHY, RESTORED_S, "far HEALTHY at the end")

        # Final state: far HEALTHY with its session as it was, usable, and
        # back in the race that stayed open through every flap.
        assert cluster.health("near") == HEALTHY
        far_after = get_session(hub, name, "far")
        assert far_after.pid == far_before.pid
        assert far_after.state == types_pb2.SESSION_STATE_RUNNING
        assert "before-flaps" in screen_lines(hub, name, "far")
        generation = send(hub, name, "far", "echo after-flaps\n")
        idle = race.until(settle_of("far", generation), 15, "far after the flaps")
        assert "after-flaps" in idle.screen.lines
        # Each AwaitIdle open during the flaps either died with its connection
        # (SERVER_UNAVAILABLE) or, still open, saw that new output settle.
        for wait in waits:
            wait_until(wait.done, CUT_NOTICED_S, "the AwaitIdles open through the flaps to end")
        outcomes = [wait_outcome(wait) for wait in waits]
        assert set(outcomes) <= {"OK", "SERVER_UNAVAILABLE"}, outcomes
    finally:
        race.close()
        for wait in waits:
            wait.cancel()

    # The hub's resources are back at the baseline.
    after = settled_stats(cluster)
    assert after.races == 0, after
    assert after.links == base.links, (base, after)
    assert after.open_fds <= base.open_fds + FD_SLACK, (base, after)
    assert after.tasks <= base.tasks + TASK_SLACK, (base, after)
    # Far ends the Link and race streams of dead connections (at the latest
    # by its own keepalive) and is back at its baseline too.
    far_seen: list[tuple[int, int]] = []

    def far_settled() -> bool:
        stats = cluster.far_stats()
        far_seen.append((stats["links"], stats["races"]))
        return (stats["links"], stats["races"]) == (1, 0)

    wait_until(far_settled, 40, "far to hold one Link stream and no race streams")
    far_end = cluster.far_stats()
    assert far_end["open_fds"] <= far_base["open_fds"] + FD_SLACK, (far_base, far_end)
    assert far_end["tasks"] <= far_base["tasks"] + TASK_SLACK, (far_base, far_end)
    print(
        f"\n[flap x{FLAPS}] AwaitIdles open through them ended {outcomes}; "
        f"long flaps: cut -> UNAVAILABLE "
        f"{', '.join(fmt_s(t) for t in noticed)}; up -> HEALTHY "
        f"{', '.join(fmt_s(t) for t in healed)}; hub fds {base.open_fds} -> {after.open_fds}, "
        f"tasks {base.tasks} -> {after.tasks}, races {after.races}, links {after.links}; "
        f"far fds {far_base['open_fds']} -> {far_end['open_fds']}, "
        f"tasks {far_base['tasks']} -> {far_end['tasks']}, (links, races) seen {far_seen}"
    )
