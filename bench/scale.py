"""Scale: what a hub costs as the cluster grows, and listings as sessions grow.

Each layout is started fresh and stopped before the next, so the 2-core
machine never runs more than one.

1. Backends: a hub with 1, 8, 32 and 64 backends, each with 10 bash
   sessions created through the hub; one of them, on the last backend,
   carries the raced tag. For each layout:
     idle: the hub's and the backends' CPU over IDLE_S with nothing asked
       (heartbeats, keepalive, activity reports), in ms of CPU per backend
       per second;
     ListSessions of the whole cluster;
     RaceIdle over the cluster, from opening the stream to its first result
       (the tagged session, settled long ago; max_results 1), and the hub's
       and backends' CPU per race (CPU over the races less the idle rate);
     the same race scoped to the last backend (``server``).
2. Collecting one session per backend at 32 backends (the largest layout
   with --quick): each runs ``sleep`` for its own time, spread over
   COLLECT_SPREAD_S, then prints; timed from sending the work until every
   session has reported once its work printed: one RaceIdle stream; a
   race_first loop passing what it collected as ``exclude``; and (reference)
   the seed's loop passing only ``last_session``, given 3x the stream's time.
3. Local sessions: 10, 100, 1,000 ``cat`` sessions on one server, quiet for
   11 s (a quiet session's foreground is inspected again every 30 s):
   ListSessions median and p99.
4. Remote sessions: 10 fake backends (``tests/fake_backend.py``) with 1,000
   sessions each in their Link inventories: ListSessions of 10,000.

CPU is each process's run time from /proc/PID/task/*/schedstat (all its
threads, in ns). Targets (issue 16): cluster race at 64 backends at most 1.5x
one backend; idle hub at most 0.2 ms of CPU per backend per second (64
backends under 1.5% of a core); the race_first loop within 1.3x of the
stream, all collected; 1,000 local sessions listed in at most 5 ms
(median); 10,000 remote sessions in at most 20 ms.

    python bench/scale.py            # the full curves (about 10 minutes)
    python bench/scale.py --quick    # a smoke run at tiny sizes (CI)
"""

from __future__ import annotations

import contextlib
import glob
import time
from collections.abc import Sequence
from dataclasses import dataclass

import _harness as h
import grpc

from tests.fakes import FakeBackend
from tests.procs import ServerProc
from wsh.v1 import hub_pb2

TAG = "raced"
COLLECT_TAG = "collect"
RACE_TIMEOUT_MS = 50
COLLECT_QUIET_MS = 100
# Echo off, so that only the work's own output moves the generation.
COLLECT_COMMAND = "stty -echo; while read t; do sleep $t; echo done; done"
RACE_RATIO = 1.5
COLLECT_RATIO = 1.3
IDLE_CPU_MS = 0.2
IDLE_CORE_PCT = 1.5
LOCAL_LIST_MS = 5.0
REMOTE_LIST_MS = 20.0


@dataclass(frozen=True)
class Size:
    layouts: tuple[int, ...]
    sessions: int  # per backend
    races: int
    calls: int
    idle_s: float
    collect_at: int
    collect_spread_s: float
    collect_trials: int
    local: tuple[int, ...]
    fakes: int
    fake_sessions: int
    budget_s: float
    quiet_s: float  # wait before listing local sessions


FULL = Size((1, 8, 32, 64), 10, 100, 200, 10.0, 32, 1.5, 3, (10, 100, 1000), 10, 1000, 30.0, 11.0)
QUICK = Size((1, 2), 2, 10, 20, 1.5, 2, 0.3, 1, (10, 50), 2, 100, 10.0, 1.0)


def cpu_ns(pid: int) -> int:
    """Run time of every thread of ``pid`` so far, in ns."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError), open(path) as f:
            total += int(f.read().split()[0])
    return total


class CpuMeter:
    """CPU of a set of processes between ``start`` and ``stop``."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self._cpu = 0
        self._at = 0.0
        self.cpu_ms = 0.0
        self.wall_s = 0.0

    def start(self) -> None:
        self._cpu, self._at = sum(cpu_ns(p) for p in self.pids), time.monotonic()

    def stop(self) -> None:
        self.cpu_ms = (sum(cpu_ns(p) for p in self.pids) - self._cpu) / 1e6
        self.wall_s = time.monotonic() - self._at


def pid_of(proc: ServerProc) -> int:
    assert proc.proc is not None
    return proc.proc.pid


def first_result(hub: h.HubStub, request: hub_pb2.RaceIdleRequest) -> hub_pb2.RaceIdleResponse:
    stream = hub.RaceIdle(request, timeout=h.RPC_TIMEOUT)
    try:
        return next(iter(stream))
    finally:
        stream.cancel()


def wait_listed(hub: h.HubStub, expected: int, timeout: float = 60.0) -> None:
    """The hub learns about sessions from its links: wait until it lists them all."""
    request = hub_pb2.ListSessionsRequest()
    h.poll_until(
        lambda: (
            True
            if len(hub.ListSessions(request, timeout=h.RPC_TIMEOUT).sessions) == expected
            else None
        ),
        timeout,
        0.1,
        f"{expected} sessions listed",
    )


def time_lists(hub: h.HubStub, expected: int, calls: int, budget_s: float) -> h.Stats:
    request = hub_pb2.ListSessionsRequest()
    samples = []
    for _ in h.bounded(calls, budget_s):
        start = h.now_ns()
        found = hub.ListSessions(request, timeout=h.RPC_TIMEOUT).sessions
        samples.append(h.now_ns() - start)
        if len(found) != expected:
            raise RuntimeError(f"listed {len(found)} sessions, expected {expected}")
    return h.Stats.of(samples)


@dataclass(frozen=True)
class RaceCost:
    first: h.Stats
    hub_cpu_ms: float  # per race, less the idle rate
    backend_cpu_ms: float  # per race, all backends together


def time_races(
    hub: h.HubStub,
    request: hub_pb2.RaceIdleRequest,
    want: tuple[str, str],
    races: int,
    budget_s: float,
    meters: tuple[CpuMeter, CpuMeter],
    idle_rates: tuple[float, float],
) -> RaceCost:
    samples = []
    for meter in meters:
        meter.start()
    for _ in h.bounded(races, budget_s):
        start = h.now_ns()
        idle = first_result(hub, request).idle
        samples.append(h.now_ns() - start)
        if (idle.server, idle.session) != want:
            raise RuntimeError(f"race answered {idle.server}/{idle.session}, not {want}")
    for meter in meters:
        meter.stop()
    per_race = [
        max(0.0, (m.cpu_ms - rate * m.wall_s) / len(samples))
        for m, rate in zip(meters, idle_rates, strict=True)
    ]
    return RaceCost(h.Stats.of(samples), per_race[0], per_race[1])


@dataclass(frozen=True)
class Collected:
    stream_s: float
    loop_s: float
    loop_got: int
    old_got: int
    old_s: float
    ideal_s: float


def collect(hub: h.HubStub, backends: Sequence[ServerProc], size: Size) -> Collected:
    """Section 2: one session per backend, each settling at its own time."""
    n = len(backends)
    for backend in backends:
        hub.CreateSession(
            hub_pb2.CreateSessionRequest(
                server=backend.hostname,
                name="collect",
                command=COLLECT_COMMAND,
                tags=[COLLECT_TAG],
            ),
            timeout=h.RPC_TIMEOUT,
        )
    delays = [0.2 + size.collect_spread_s * i / max(1, n - 1) for i in range(n)]
    time.sleep(1.0)  # every shell has read its stty and waits in `read`

    def start() -> tuple[float, list[hub_pb2.RaceExclusion]]:
        started = time.monotonic()
        sent = []
        for backend, delay in zip(backends, delays, strict=True):
            generation = hub.SendInput(
                hub_pb2.SendInputRequest(
                    name="collect", server=backend.hostname, data=f"{delay:.3f}\n".encode()
                ),
                timeout=h.RPC_TIMEOUT,
            ).generation
            sent.append(
                hub_pb2.RaceExclusion(
                    server=backend.hostname, session="collect", generation=generation
                )
            )
        return started, sent

    def race(**fields: object) -> hub_pb2.RaceIdleRequest:
        wait_ms = int(max(10.0, 3 * size.collect_spread_s) * 1000)
        given: dict[str, object] = {"max_wait_ms": wait_ms, **fields}
        return hub_pb2.RaceIdleRequest(
            tags=[COLLECT_TAG],
            timeout_ms=COLLECT_QUIET_MS,
            **given,  # type: ignore[arg-type]
        )

    def settle_all() -> None:
        time.sleep(COLLECT_QUIET_MS / 1000 + 0.5)

    stream_times, loop_times, loop_counts, old_counts, old_times = [], [], [], [], []
    for _ in range(size.collect_trials):
        started, sent = start()
        got: set[str] = set()
        stream = hub.RaceIdle(race(exclude=sent, max_results=n), timeout=h.RPC_TIMEOUT)
        for response in stream:
            got.add(response.idle.server)
        stream_times.append(time.monotonic() - started)
        if len(got) != n:
            raise RuntimeError(f"the stream collected {len(got)} of {n}")
        settle_all()

        started, sent = start()
        skip = {e.server: e for e in sent}
        got = set()
        deadline = started + 3 * stream_times[-1] + 5.0
        while len(got) < n and time.monotonic() < deadline:
            idle = first_result(hub, race(exclude=list(skip.values()), max_results=1)).idle
            got.add(idle.server)
            skip[idle.server] = hub_pb2.RaceExclusion(
                server=idle.server, session=idle.session, generation=idle.generation
            )
        loop_times.append(time.monotonic() - started)
        loop_counts.append(len(got))
        settle_all()

        # The seed's pattern: only the session last collected is skipped.
        started, sent = start()
        moved_past = {e.server: e.generation for e in sent}
        got = set()
        last: dict[str, object] = {}
        deadline = started + 3 * stream_times[-1]
        # It ends on IDLE_TIMEOUT once nothing new settles within its time.
        with contextlib.suppress(grpc.RpcError):
            while len(got) < n and time.monotonic() < deadline:
                left = max(0.1, deadline - time.monotonic())
                idle = first_result(
                    hub, race(max_results=1, max_wait_ms=int(left * 1000), **last)
                ).idle
                if idle.generation > moved_past[idle.server]:
                    got.add(idle.server)
                last = {
                    "last_session": idle.session,
                    "last_server": idle.server,
                    "last_generation": idle.generation,
                }
        old_counts.append(len(got))
        old_times.append(time.monotonic() - started)
        settle_all()
    return Collected(
        stream_s=min(stream_times),
        loop_s=min(loop_times),
        loop_got=min(loop_counts),
        old_got=max(old_counts),
        old_s=max(old_times),
        ideal_s=max(delays) + COLLECT_QUIET_MS / 1000,
    )


@dataclass(frozen=True)
class Layout:
    backends: int
    hub_idle_ms: float  # CPU per backend per second
    backend_idle_ms: float  # CPU per backend per second, each
    listing: h.Stats
    cluster: RaceCost
    scoped: RaceCost
    collected: Collected | None


def measure_layout(n: int, size: Size) -> Layout:
    with h.bench_run(f"scale{n}") as (stack, scratch):
        backends = [h.start_server(stack, scratch, f"be{i}") for i in range(n)]
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        h.add_backends(hub, backends)
        for backend in backends:
            for i in range(size.sessions):
                raced = backend is backends[-1] and i == 0
                hub.CreateSession(
                    hub_pb2.CreateSessionRequest(
                        server=backend.hostname,
                        name=f"sh{i}",
                        command=h.SHELL,
                        env=h.PROMPT_ENV,
                        tags=[TAG] if raced else [],
                    ),
                    timeout=h.RPC_TIMEOUT,
                )
        expected = n * size.sessions
        wait_listed(hub, expected)
        # Past every shell's start and the hub's first heartbeat rounds.
        time.sleep(2.0)
        meters = (CpuMeter([pid_of(hub_proc)]), CpuMeter([pid_of(b) for b in backends]))
        for meter in meters:
            meter.start()
        time.sleep(size.idle_s)
        for meter in meters:
            meter.stop()
        idle_rates = (meters[0].cpu_ms / meters[0].wall_s, meters[1].cpu_ms / meters[1].wall_s)

        listing = time_lists(hub, expected, size.calls, size.budget_s)
        want = (backends[-1].hostname, "sh0")
        request = hub_pb2.RaceIdleRequest(
            tags=[TAG], timeout_ms=RACE_TIMEOUT_MS, max_wait_ms=10_000, max_results=1
        )
        cluster = time_races(hub, request, want, size.races, size.budget_s, meters, idle_rates)
        request.server = backends[-1].hostname
        scoped = time_races(hub, request, want, size.races, size.budget_s, meters, idle_rates)
        collected = collect(hub, backends, size) if n == size.collect_at else None
    return Layout(
        n,
        idle_rates[0] / n,
        idle_rates[1] / n,
        listing,
        cluster,
        scoped,
        collected,
    )


def measure_local(size: Size) -> dict[int, h.Stats]:
    """Section 3: one server, its own sessions listed as they grow."""
    found = {}
    with h.bench_run("scale-local") as (stack, scratch):
        proc = ServerProc(
            "solo",
            "--config",
            str(scratch / "solo.toml"),
            "--max-sessions",
            str(max(size.local)),
            log_path=scratch / "solo.log",
        )
        stack.callback(h.stop_server, proc)
        proc.start()
        hub = h.connect(stack, proc.addr)
        made = 0
        for count in size.local:
            for i in range(made, count):
                hub.CreateSession(
                    hub_pb2.CreateSessionRequest(name=f"cat{i}", command="cat"),
                    timeout=h.RPC_TIMEOUT,
                )
            made = count
            # Quiet sessions: their foregrounds are inspected again only
            # every 30 s, as a long-lived server's mostly are.
            time.sleep(size.quiet_s)
            found[count] = time_lists(hub, count, size.calls, size.budget_s)
    return found


def measure_remote(size: Size) -> tuple[int, h.Stats]:
    """Section 4: sessions the hub lists from its fake backends' inventories."""
    with h.bench_run("scale-remote") as (stack, scratch):
        fakes = []
        for i in range(size.fakes):
            fake = FakeBackend(scratch, f"fake{i}", generated=size.fake_sessions)
            stack.callback(fake.stop)
            fakes.append(fake.start())
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        for fake in fakes:
            added = hub.AddServer(
                hub_pb2.AddServerRequest(address=fake.url, wait=True), timeout=h.RPC_TIMEOUT
            ).server
            if added.health != hub_pb2.SERVER_HEALTH_HEALTHY:
                raise RuntimeError(f"fake backend {fake.hostname} is not healthy: {added}")
        expected = size.fakes * size.fake_sessions
        wait_listed(hub, expected)
        return expected, time_lists(hub, expected, size.calls, size.budget_s)


def report(
    size: Size, layouts: list[Layout], local: dict[int, h.Stats], remote: tuple[int, h.Stats]
) -> None:
    print("\nbackends: per layout (CPU in ms; idle per backend per second, races per race)")
    print(
        "  N   idle hub  idle each be  ListSessions med/p99   cluster race med/p99  hub/be CPU"
        "   scoped race med/p99  hub/be CPU"
    )
    for lay in layouts:
        cells = [f"{lay.backends:<3d} {lay.hub_idle_ms:8.3f}  {lay.backend_idle_ms:12.3f}"]
        cells.append(f"{lay.listing.median:9.2f} / {lay.listing.p99:6.2f}")
        for race in (lay.cluster, lay.scoped):
            cells.append(
                f"{race.first.median:9.2f} / {race.first.p99:6.2f}  "
                f"{race.hub_cpu_ms:5.2f}/{race.backend_cpu_ms:5.2f}"
            )
        print("  " + "  ".join(cells))
    one, big = layouts[0], layouts[-1]
    rows: list[h.Row] = [
        h.ratio_row(
            f"RaceIdle first median, {big.backends} backends",
            big.cluster.first.median,
            one.cluster.first.median,
            "ms",
            RACE_RATIO,
        ),
        h.ratio_row(
            f"scoped race median, {big.backends} backends",
            big.scoped.first.median,
            one.scoped.first.median,
            "ms",
            None,
        ),
        h.ratio_row(
            f"hub CPU per race, {big.backends} backends",
            big.cluster.hub_cpu_ms,
            one.cluster.hub_cpu_ms,
            "ms",
            None,
        ),
        h.limit_row(
            f"idle hub CPU per backend per s, {big.backends} backends",
            big.hub_idle_ms,
            "ms",
            IDLE_CPU_MS,
        ),
        h.limit_row(
            f"idle hub, {big.backends} backends, % of a core",
            big.hub_idle_ms * big.backends / 10,
            "%",
            IDLE_CORE_PCT if big.backends >= 64 else None,
        ),
    ]
    for lay in layouts:
        got = lay.collected
        if got is None:
            continue
        print(
            f"\ncollect one session on each of {lay.backends} backends (work spread over "
            f"{size.collect_spread_s} s; ideal {got.ideal_s:.2f} s): stream {got.stream_s:.2f} s; "
            f"race_first + exclude {got.loop_got}/{lay.backends} in {got.loop_s:.2f} s; "
            f"race_first + last_session {got.old_got}/{lay.backends} in {got.old_s:.2f} s"
        )
        rows.append(
            h.ratio_row(
                f"race_first+exclude vs stream, {lay.backends} backends",
                got.loop_s if got.loop_got == lay.backends else float("inf"),
                got.stream_s,
                "s",
                COLLECT_RATIO,
            )
        )
    print("\nlocal sessions, ListSessions on their server")
    for count, stats in local.items():
        print(f"  {count:5d} sessions: median {stats.median:.2f} ms, p99 {stats.p99:.2f} ms")
    most = max(local)
    rows.append(
        h.limit_row(
            f"ListSessions, {most} local sessions (median)",
            local[most].median,
            "ms",
            LOCAL_LIST_MS if most >= 1000 else None,
        )
    )
    count, stats = remote
    print(
        f"\nremote sessions: {count} on {size.fakes} fake backends, ListSessions through the hub: "
        f"median {stats.median:.2f} ms, p99 {stats.p99:.2f} ms"
    )
    rows.append(
        h.limit_row(
            f"ListSessions, {count} remote sessions (median)",
            stats.median,
            "ms",
            REMOTE_LIST_MS if count >= 10_000 else None,
        )
    )
    h.print_table(f"scale: targets ({'quick' if size is QUICK else 'full'} run)", rows, "reference")


def main() -> None:
    args = h.parse_args(__doc__ or "")
    size = QUICK if args.quick else FULL
    layouts = []
    for n in size.layouts:
        layouts.append(measure_layout(n, size))
        lay = layouts[-1]
        print(
            f"  {n} backends: idle hub {lay.hub_idle_ms:.3f} ms CPU per backend per s; "
            f"cluster race first median {lay.cluster.first.median:.2f} ms",
            flush=True,
        )
    local = measure_local(size)
    remote = measure_remote(size)
    report(size, layouts, local, remote)


if __name__ == "__main__":
    main()
