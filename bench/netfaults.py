"""Network faults: a backend behind a real link that breaks, slows, loses and flaps.

The long version of ``tests/e2e/test_netfaults.py``. The hub and a backend
"near" run in one network namespace, the backend "far" in another, joined
only by a veth pair (``tests/netns.py``); the script reaches the hub over a
Unix socket. Needs root. Phases:

* cut: ROUNDS times each, take the link down (``ip link set down``) or drop
  every packet on it (nftables, both ends): time until the hub shows far
  UNAVAILABLE, until an AwaitIdle on far that was open ends, and how long a
  new call on far takes to fail; then restore and time until HEALTHY, and
  check far's session (same pid, same screen).
* a long cut (nftables drop for LONG_CUT_S): time from restore to HEALTHY
  after the hub has been retrying for a while.
* slow: tbf at 256 kbit/s and 64 kbit/s each way; send/await/read round
  trips and a ~60 KB scrollback page, with ListServers sampled every 100 ms:
  far must stay HEALTHY throughout.
* lossy: nftables ``numgen random`` drop of 10 % and 20 % of the packets
  arriving at each end, round trips for LOSSY_S: all complete, far stays
  HEALTHY.
* flap: FLAPS link flaps (alternately until the hub notices and shorter than
  the keepalive bound) with a race and AwaitIdles open; then the hub's
  descriptors, tasks, Link and race streams against the baseline.

Each run prints a table and appends it to ``bench/NETFAULTS.md``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import secrets
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import _harness as h
import grpc

from tests.netns import FaultCluster, HealthSampler, NetPair, RaceReader, Unsupported
from tests.procs import error_reason
from wsh.v1 import hub_pb2, types_pb2

RESULTS = Path(__file__).with_name("NETFAULTS.md")
HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY
UNAVAILABLE = hub_pb2.SERVER_HEALTH_UNAVAILABLE
SHELL = "bash --norc --noprofile"
POLL_S = 0.010
WAIT_S = 30.0
# Targets: the hub's keepalive (1 s ping, 1 s timeout) and heartbeat (3 s)
# bound for noticing, a second of backoff and a handshake for coming back.
NOTICED_TARGET_S = 3.0
HEALTHY_TARGET_S = 2.0
FAIL_FAST_TARGET_MS = 100.0
FD_SLACK = 2
TASK_SLACK = 3


def wait_for(probe: Callable[[], bool], what: str, timeout: float = WAIT_S) -> float:
    """Seconds until ``probe()`` holds, polled every 10 ms."""
    start = time.monotonic()
    h.poll_until(lambda: True if probe() else None, timeout, POLL_S, what)
    return time.monotonic() - start


def far_is(cluster: FaultCluster, health: int) -> Callable[[], bool]:
    return lambda: cluster.health("far") == health


def run_line(hub: h.HubStub, name: str, line: str, timeout: float = 60.0) -> types_pb2.Idle:
    generation = hub.SendInput(
        hub_pb2.SendInputRequest(name=name, server="far", data=(line + "\n").encode()),
        timeout=timeout,
    ).generation
    request = hub_pb2.AwaitIdleRequest(
        name=name,
        server="far",
        timeout_ms=300,
        max_wait_ms=int(timeout * 1000),
        last_generation=generation,
    )
    return hub.AwaitIdle(request, timeout=timeout + 10).idle


def round_trip(hub: h.HubStub, name: str, marker: str) -> float:
    """SendInput, AwaitIdle, GetScreen and a GetScrollback page on far; seconds."""
    start = time.monotonic()
    idle = run_line(hub, name, f"echo {marker}")
    if marker not in idle.screen.lines:
        raise AssertionError(f"{marker!r} not on the idle screen: {list(idle.screen.lines)}")
    if marker not in h.screen_lines(hub, name, "far"):
        raise AssertionError(f"{marker!r} not on the screen")
    hub.GetScrollback(hub_pb2.GetScrollbackRequest(name=name, server="far", limit=200), timeout=60)
    return time.monotonic() - start


def new_session(hub: h.HubStub, name: str, server: str = "far") -> types_pb2.Session:
    request = hub_pb2.CreateSessionRequest(name=name, server=server, command=SHELL, tags=[name])
    session = hub.CreateSession(request, timeout=h.RPC_TIMEOUT).session
    if server == "far":
        run_line(hub, name, f"echo {name}-ready")
    return session


def get_session(hub: h.HubStub, name: str) -> types_pb2.Session:
    request = hub_pb2.GetSessionRequest(name=name, server="far")
    return hub.GetSession(request, timeout=h.RPC_TIMEOUT).session


def outcome(err: BaseException | None) -> str:
    if err is None:
        return "OK"
    if isinstance(err, grpc.RpcError):
        return error_reason(err) or err.code().name
    return type(err).__name__


# -- phases ---------------------------------------------------------------------


def cut_rounds(cluster: FaultCluster, kind: str, rounds: int) -> list[h.Row]:
    hub, net = cluster.stub, cluster.net
    name = f"cut-{kind}"
    new_session(hub, name)
    before = get_session(hub, name)
    screen = list(h.screen_lines(hub, name, "far"))
    noticed, ended, fail_ms, healed = [], [], [], []
    outcomes = set()
    for i in range(rounds):
        generation = get_session(hub, name).generation
        request = hub_pb2.AwaitIdleRequest(
            name=name, server="far", timeout_ms=300, max_wait_ms=120_000, last_generation=generation
        )
        pending = hub.AwaitIdle.future(request, timeout=180)
        time.sleep(0.3)
        cut = time.monotonic()
        net.link_down() if kind == "link-down" else net.block()
        noticed.append(wait_for(far_is(cluster, UNAVAILABLE), "far UNAVAILABLE"))
        with contextlib.suppress(grpc.FutureTimeoutError, grpc.RpcError):
            pending.result(timeout=WAIT_S)
        ended.append(time.monotonic() - cut if pending.done() else float("inf"))
        outcomes.add(outcome(pending.exception() if pending.done() else TimeoutError()))
        start = time.monotonic()
        try:
            get_session(hub, name)
        except grpc.RpcError as err:
            if error_reason(err) != "SERVER_UNAVAILABLE":
                raise
        else:
            raise AssertionError("a call on far succeeded through the cut link")
        fail_ms.append((time.monotonic() - start) * 1000)
        time.sleep(0.5 + i % 3)  # the link stays down a little longer in some rounds
        net.heal()
        healed.append(wait_for(far_is(cluster, HEALTHY), "far HEALTHY"))
        after = get_session(hub, name)
        if after.pid != before.pid or list(h.screen_lines(hub, name, "far")) != screen:
            raise AssertionError(f"far's session changed across the cut: {before} -> {after}")
    print(f"  {kind}: open AwaitIdle outcomes {sorted(outcomes)}")
    label = f"{kind}: cut -> UNAVAILABLE"
    return [
        h.limit_row(f"{label}, median", statistics.median(noticed), "s", None),
        h.limit_row(f"{label}, max", max(noticed), "s", NOTICED_TARGET_S),
        h.limit_row(f"{kind}: open AwaitIdle ended, max", max(ended), "s", NOTICED_TARGET_S),
        h.limit_row(f"{kind}: new call fails, max", max(fail_ms), "ms", FAIL_FAST_TARGET_MS),
        h.limit_row(f"{kind}: restore -> HEALTHY, median", statistics.median(healed), "s", None),
        h.limit_row(f"{kind}: restore -> HEALTHY, max", max(healed), "s", HEALTHY_TARGET_S),
    ]


def long_cut(cluster: FaultCluster, seconds: float) -> list[h.Row]:
    cluster.net.block()
    wait_for(far_is(cluster, UNAVAILABLE), "far UNAVAILABLE")
    time.sleep(seconds)
    cluster.net.heal()
    healed = wait_for(far_is(cluster, HEALTHY), "far HEALTHY")
    return [
        h.limit_row(f"nft-drop {seconds:.0f}s: restore -> HEALTHY", healed, "s", HEALTHY_TARGET_S)
    ]


def slow_link(cluster: FaultCluster, rate: str, trips: int) -> list[h.Row]:
    hub = cluster.stub
    name = f"slow-{rate}"
    new_session(hub, name)
    # ~60 KB of scrollback, made before the link slows down.
    run_line(hub, name, "for i in $(seq 750); do printf '%079d\\n' $i; done")
    failures: list[str] = []

    def attempt(what: str, call: Callable[[], float]) -> float | None:
        try:
            return call()
        except grpc.RpcError as err:
            failures.append(f"{what}: {outcome(err)}")
            wait_for(far_is(cluster, HEALTHY), "far HEALTHY again")
            return None

    def bulk() -> float:
        start = time.monotonic()
        page = hub.GetScrollback(
            hub_pb2.GetScrollbackRequest(name=name, server="far", limit=1000), timeout=120
        )
        sizes.append(page.ByteSize())
        return time.monotonic() - start

    sizes: list[int] = []
    cluster.net.slow(rate, "16kb", "400ms")
    try:
        with HealthSampler(cluster) as sampler:
            times = [
                attempt("round trip", functools.partial(round_trip, hub, name, f"{name}-{i}"))
                for i in range(trips)
            ]
            bulk_s = attempt("scrollback page", bulk)
            times.append(
                attempt("round trip", functools.partial(round_trip, hub, name, f"{name}-after"))
            )
            time.sleep(2)
    finally:
        cluster.net.unslow()
    done = [t for t in times if t is not None]
    bad = len(sampler.not_healthy())
    print(
        f"  slow {rate}: {len(sampler.samples)} samples, max heartbeat latency "
        f"{sampler.max_latency_ms:.0f} ms, page {sizes} bytes, failed calls {failures}"
    )
    rows = [
        h.limit_row(f"slow {rate}: round trip, median", statistics.median(done), "s", None),
        h.limit_row(f"slow {rate}: round trip, max", max(done), "s", None),
    ]
    if bulk_s is not None:
        rows.append(h.limit_row(f"slow {rate}: 60 KB scrollback page", bulk_s, "s", None))
    return [
        *rows,
        h.limit_row(f"slow {rate}: failed calls (of {trips + 2})", len(failures), "", 1),
        h.limit_row(f"slow {rate}: samples not HEALTHY", bad, "", 1),
    ]


def lossy_link(cluster: FaultCluster, percent: int, seconds: float) -> list[h.Row]:
    hub = cluster.stub
    name = f"lossy-{percent}"
    new_session(hub, name)
    cluster.net.lossy(percent)
    times: list[float] = []
    failures: list[str] = []
    try:
        with HealthSampler(cluster) as sampler:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    times.append(round_trip(hub, name, f"{name}-{len(times)}"))
                except grpc.RpcError as err:
                    failures.append(outcome(err))
                    time.sleep(0.5)
    finally:
        cluster.net.unblock()
    bad = len(sampler.not_healthy())
    print(
        f"  lossy {percent}%: {len(times)} round trips, failed {failures}, "
        f"{len(sampler.samples)} samples, max heartbeat latency {sampler.max_latency_ms:.0f} ms"
    )
    return [
        h.limit_row(f"lossy {percent}%: round trip, median", statistics.median(times), "s", None),
        h.limit_row(f"lossy {percent}%: round trip, max", max(times), "s", None),
        h.limit_row(f"lossy {percent}%: failed round trips", len(failures), "", 1),
        h.limit_row(f"lossy {percent}%: samples not HEALTHY ({seconds:.0f}s)", bad, "", 1),
    ]


def settled_hub_stats(cluster: FaultCluster) -> hub_pb2.ServerStats:
    previous = None
    deadline = time.monotonic() + 20
    while True:
        stats = cluster.hub_stats()
        same = previous is not None and (stats.open_fds, stats.tasks) == (
            previous.open_fds,
            previous.tasks,
        )
        if (stats.races == 0 and same) or time.monotonic() > deadline:
            return stats
        previous = stats
        time.sleep(0.5)


def flaps(cluster: FaultCluster, count: int) -> list[h.Row]:
    hub, net = cluster.stub, cluster.net
    name = "flap"
    before = new_session(hub, name)
    new_session(hub, "flap-near", "near")
    base = settled_hub_stats(cluster)
    far_base = cluster.far_stats()
    race = RaceReader(hub, [name, "flap-near"])
    waits = []
    noticed, healed = [], []
    try:
        for flap in range(count):
            if cluster.health("far") == HEALTHY:
                request = hub_pb2.AwaitIdleRequest(
                    name=name,
                    server="far",
                    timeout_ms=300,
                    max_wait_ms=120_000,
                    last_generation=get_session(hub, name).generation,
                )
                waits.append(hub.AwaitIdle.future(request, timeout=180))
            net.link_down()
            if flap % 2 == 0:
                noticed.append(wait_for(far_is(cluster, UNAVAILABLE), "far UNAVAILABLE"))
                net.link_up()
                healed.append(wait_for(far_is(cluster, HEALTHY), "far HEALTHY"))
            else:
                time.sleep(0.2 + 0.2 * (flap % 4))
                net.link_up()
                time.sleep(0.4)
        wait_for(far_is(cluster, HEALTHY), "far HEALTHY at the end")
        after = get_session(hub, name)
        if after.pid != before.pid:
            raise AssertionError(f"far's session changed: {before} -> {after}")
        generation = hub.SendInput(
            hub_pb2.SendInputRequest(name=name, server="far", data=b"echo after-flaps\n"),
            timeout=h.RPC_TIMEOUT,
        ).generation
        race.until(
            lambda idle: idle.server == "far" and idle.generation >= generation,
            15,
            "far in the race after the flaps",
        )
        for wait in waits:
            h.poll_until(lambda w=wait: True if w.done() else None, WAIT_S, POLL_S, "AwaitIdle")
        outcomes = sorted({outcome(w.exception()) for w in waits})
    finally:
        race.close()
        for wait in waits:
            wait.cancel()
    end = settled_hub_stats(cluster)
    far_seen = []

    def far_settled() -> bool | None:
        stats = cluster.far_stats()
        far_seen.append((stats["links"], stats["races"]))
        return True if (stats["links"], stats["races"]) == (1, 0) else None

    far_settle_s = time.monotonic()
    h.poll_until(far_settled, 60, 0.5, "far: one Link stream, no races")
    far_settle_s = time.monotonic() - far_settle_s
    far_end = cluster.far_stats()
    print(
        f"  flap x{count}: AwaitIdle outcomes {outcomes}; hub {base.open_fds} fds "
        f"{base.tasks} tasks -> {end.open_fds} fds {end.tasks} tasks, races {end.races}; "
        f"far {far_base['open_fds']} fds {far_base['tasks']} tasks -> "
        f"{far_end['open_fds']} fds {far_end['tasks']} tasks; far (links, races) {far_seen}"
    )
    return [
        h.limit_row(f"flap x{count}: cut -> UNAVAILABLE, max", max(noticed), "s", NOTICED_TARGET_S),
        h.limit_row(f"flap x{count}: up -> HEALTHY, max", max(healed), "s", HEALTHY_TARGET_S),
        h.limit_row(
            f"flap x{count}: hub fds over baseline", end.open_fds - base.open_fds, "", FD_SLACK + 1
        ),
        h.limit_row(
            f"flap x{count}: hub tasks over baseline", end.tasks - base.tasks, "", TASK_SLACK + 1
        ),
        h.limit_row(f"flap x{count}: hub race streams left", end.races, "", 1),
        h.limit_row(
            f"flap x{count}: far fds over baseline",
            far_end["open_fds"] - far_base["open_fds"],
            "",
            FD_SLACK + 1,
        ),
        h.limit_row(f"flap x{count}: far stale streams gone after", far_settle_s, "s", None),
    ]


# -- report -----------------------------------------------------------------------


def append_results(rows: list[h.Row], quick: bool, summary: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Network faults\n\n"
            "Results of `bench/netfaults.py` (newest last): a hub with a backend `far` "
            "behind a veth pair between two network namespaces, and a backend `near` "
            "beside the hub. Targets: far UNAVAILABLE within the keepalive/heartbeat "
            f"bound ({NOTICED_TARGET_S:g} s), HEALTHY within {HEALTHY_TARGET_S:g} s of "
            f"the restore, calls on far failing within {FAIL_FAST_TARGET_MS:g} ms while it "
            "is cut, nothing marked dead on a slow or lossy link, no leaks after flapping. "
            "`tests/e2e/test_netfaults.py` checks the same with looser bounds.\n"
        )
    lines = [
        "",
        f"## {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
        + (" (--quick)" if quick else ""),
        "",
        summary,
        "",
        "| metric | value | target | result |",
        "|---|---:|---|---|",
    ]
    for row in rows:
        value = f"{row.wsh:.3g} {row.unit}".strip()
        verdict = "ref" if row.ok is None else ("PASS" if row.ok else "MISS")
        lines.append(f"| {row.metric} | {value} | {row.target.strip()} | {verdict} |")
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")


def main() -> None:
    args = h.parse_args(__doc__ or "")
    rounds = 2 if args.quick else 10
    long_cut_s = 8.0 if args.quick else 30.0
    trips = 5 if args.quick else 20
    lossy_s = 10.0 if args.quick else 60.0
    flap_count = 6 if args.quick else 20
    rows: list[h.Row] = []
    with h.bench_run("netfaults") as (stack, scratch):
        net = NetPair()
        try:
            net.create()
        except Unsupported as exc:
            raise SystemExit(f"netfaults: cannot build the private network: {exc}") from None
        stack.callback(net.destroy)
        # A short Unix socket path: the scratch directory name is long.
        sock_dir = Path(f"/tmp/wshnf-{secrets.token_hex(4)}")
        sock_dir.mkdir(mode=0o700)
        stack.callback(shutil.rmtree, sock_dir, True)
        cluster = FaultCluster(net, scratch, "netfaults-" + secrets.token_hex(12), sock_dir)
        stack.callback(cluster.stop)
        cluster.start()
        stack.callback(net.heal)
        for kind in ("link-down", "nft-drop"):
            rows += cut_rounds(cluster, kind, rounds)
        rows += long_cut(cluster, long_cut_s)
        for rate in ("256kbit", "64kbit"):
            rows += slow_link(cluster, rate, trips)
        for percent in (10, 20):
            rows += lossy_link(cluster, percent, lossy_s)
        rows += flaps(cluster, flap_count)
    title = f"netfaults: a backend behind a veth link that fails ({rounds} cuts per kind)"
    h.print_table(title, rows)
    append_results(rows, args.quick, h.machine_summary())
    print(f"\nappended to {RESULTS}")


if __name__ == "__main__":
    main()
