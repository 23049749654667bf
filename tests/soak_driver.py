"""The soak run shared by ``bench/soak.py`` (full length) and ``tests/e2e/test_soak.py`` (short).

A hub and two backends run as separate ``wsh server`` processes on loopback;
every session call goes through the hub with ``server=`` naming the owner,
so two thirds of the traffic is forwarded. The run has three phases:

1. create/kill cycles spread over the three servers, from a few concurrent
   workers; half the sessions are killed while still starting, half once
   their prompt has settled;
2. many concurrent sessions, all alive at once, each made to echo a line;
3. many concurrent clients (one ``AsyncClient`` and channel each) looping on
   a session of their own: SendInput ``echo <unique>``, AwaitIdle from its
   generation until the line shows, GetScreen.

Each server's own ``stats`` (``GetServerInfo``, asked of that server
directly) are sampled after a warm-up and after each phase once everything
is killed and has settled; a leak is growth in descriptors, child processes
or tasks beyond a small tolerance, or memory that keeps growing over the
second half of the cycles.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.procs import ServerProc
from wsh.client import AsyncClient, WshRpcError
from wsh.v1 import hub_pb2

SHELL = "bash --norc --noprofile"
# A fixed prompt keeps screens comparable; no history file, so a thousand
# killed shells do not each rewrite ~/.bash_history.
SHELL_ENV = {"PS1": "$ ", "HISTFILE": ""}
BACKENDS = ("soak-be1", "soak-be2")
HUB = "soak-hub"
RPC_TIMEOUT_S = 30.0
WAIT_MAX_MS = 10_000  # max_wait_ms of every AwaitIdle: a stuck session fails fast
STARTUP_IDLE_MS = 50  # quiet time that counts as "the new shell has settled"
CONCURRENT_CALLS = 32  # bound on the calls phase 2 has in flight at once
SETTLE_POLL_S = 0.25

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """How long and how wide a soak run is."""

    cycles: int = 1000
    sessions: int = 200
    clients: int = 50
    seconds: float = 60.0
    cycle_workers: int = 6
    idle_ms: int = 50  # AwaitIdle timeout_ms in the phase-3 loop
    settle_s: float = 20.0  # longest wait for a server to return to its baseline
    # Growth still tolerated after settling: a few descriptors or tasks may be
    # in flight (a closing connection) when a sample is taken.
    fd_tolerance: int = 4
    task_tolerance: int = 4
    # RSS growth per server allowed over the second half of the cycles: the
    # allocator keeps some freed memory, a leak grows with every cycle.
    rss_cycle_tolerance_bytes: int = 8 * 1024 * 1024
    # And over the whole run, as a backstop: freed screens and buffers stay
    # in the allocator's arenas, so RSS does not return to the baseline.
    rss_total_tolerance_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerSample:
    """One server's ``stats`` at one point."""

    sessions: int
    open_fds: int
    child_processes: int
    tasks: int
    rss_bytes: int
    links: int
    races: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The stats of every server at one point of the run."""

    label: str
    servers: dict[str, ServerSample]
    settled: bool = True


@dataclass(slots=True)
class Failures:
    """Every failed call and wrong screen, with the first few messages kept."""

    calls: Counter[str] = field(default_factory=Counter)
    wrong_screens: int = 0
    examples: list[str] = field(default_factory=list)

    def failed(self, method: str, err: BaseException) -> None:
        self.calls[method] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{method}: {type(err).__name__}: {err}")

    def wrong(self, what: str) -> None:
        self.wrong_screens += 1
        if len(self.examples) < 10:
            self.examples.append(f"wrong screen: {what}")

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass(slots=True)
class PhaseTimes:
    """Wall time of each phase, in seconds."""

    cycles_s: float = 0.0
    create_s: float = 0.0
    sessions_s: float = 0.0
    clients_s: float = 0.0


@dataclass(slots=True)
class SoakReport:
    """Everything a run measured; ``problems()`` says whether it passed."""

    config: SoakConfig
    checkpoints: list[Checkpoint] = field(default_factory=list)
    failures: Failures = field(default_factory=Failures)
    times: PhaseTimes = field(default_factory=PhaseTimes)
    cycles_done: int = 0
    sessions_per_server: dict[str, int] = field(default_factory=dict)
    listed_sessions: int = 0
    shell_rss_bytes: list[int] = field(default_factory=list)
    round_trips: int = 0
    rewaits: int = 0
    latencies_ns: dict[str, list[int]] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    # CPU seconds each process spent in phase 3 ("driver": the clients' process).
    cpu_s: dict[str, float] = field(default_factory=dict)

    def checkpoint(self, label: str) -> Checkpoint:
        for point in self.checkpoints:
            if point.label == label:
                return point
        raise KeyError(label)

    @property
    def throughput(self) -> float:
        """Phase-3 round trips per second, all clients together."""
        return self.round_trips / self.times.clients_s if self.times.clients_s else 0.0

    def memory_per_session(self) -> dict[str, float]:
        """Per server: RSS with the phase-2 sessions minus RSS just before, per session."""
        before = self.checkpoint("after cycles").servers
        loaded = self.checkpoint("loaded").servers
        return {
            name: (loaded[name].rss_bytes - before[name].rss_bytes) / count
            for name, count in self.sessions_per_server.items()
            if count
        }

    def leaks(self) -> list[str]:
        """Growth beyond tolerance of a settled server over its warm baseline."""
        cfg = self.config
        base = self.checkpoint("baseline").servers
        found = []
        for point in self.checkpoints:
            if point.label in ("baseline", "loaded"):
                continue
            for name, now in point.servers.items():
                was = base[name]
                where = f"{name} {point.label}"
                if now.sessions:
                    found.append(f"{where}: {now.sessions} sessions left")
                if now.child_processes > was.child_processes:
                    found.append(
                        f"{where}: child processes {was.child_processes} -> {now.child_processes}"
                    )
                if now.open_fds > was.open_fds + cfg.fd_tolerance:
                    found.append(f"{where}: open fds {was.open_fds} -> {now.open_fds}")
                if now.tasks > was.tasks + cfg.task_tolerance:
                    found.append(f"{where}: tasks {was.tasks} -> {now.tasks}")
        final = self.checkpoints[-1].servers
        for name, now in final.items():
            growth = now.rss_bytes - base[name].rss_bytes
            if growth > cfg.rss_total_tolerance_bytes:
                found.append(f"{name}: RSS grew {mib(growth):.1f} MiB over the run")
        if self.cycles_done >= 2:
            half = self.checkpoint("cycles half").servers
            full = self.checkpoint("after cycles").servers
            for name, now in full.items():
                growth = now.rss_bytes - half[name].rss_bytes
                if growth > cfg.rss_cycle_tolerance_bytes:
                    found.append(
                        f"{name}: RSS grew {mib(growth):.1f} MiB over the second half "
                        "of the create/kill cycles"
                    )
        return found

    def problems(self) -> list[str]:
        """Why the run failed; empty when it passed."""
        cfg = self.config
        found = [f"{n} failed {method} calls" for method, n in self.failures.calls.items()]
        if self.failures.wrong_screens:
            found.append(f"{self.failures.wrong_screens} wrong screens")
        if self.cycles_done != cfg.cycles:
            found.append(f"{self.cycles_done} of {cfg.cycles} create/kill cycles completed")
        if self.listed_sessions != cfg.sessions:
            found.append(f"hub listed {self.listed_sessions} of {cfg.sessions} sessions")
        if cfg.clients and not self.round_trips:
            found.append("no phase-3 round trip completed")
        found += [f"{name} exited with {code}" for name, code in self.exit_codes.items() if code]
        return found + self.leaks()

    def summary(self) -> str:
        """The human-readable report."""
        return "\n".join(self._summary_lines())

    def _summary_lines(self) -> Iterator[str]:
        cfg = self.config
        yield (
            f"soak: {cfg.cycles} create/kill cycles ({cfg.cycle_workers} workers), "
            f"{cfg.sessions} concurrent sessions, {cfg.clients} clients for {cfg.seconds:g}s "
            f"(AwaitIdle timeout_ms {cfg.idle_ms}); hub {HUB} + backends {', '.join(BACKENDS)}"
        )
        yield ""
        yield "phases"
        cycles_rate = self.cycles_done / self.times.cycles_s if self.times.cycles_s else 0.0
        yield (
            f"  1 cycles:   {self.cycles_done} in {self.times.cycles_s:.1f}s "
            f"({cycles_rate:.0f} cycles/s)"
        )
        spread = ", ".join(f"{n} {c}" for n, c in self.sessions_per_server.items())
        yield (
            f"  2 sessions: {self.listed_sessions} listed through the hub ({spread}); "
            f"created and prompting in {self.times.create_s:.1f}s, "
            f"phase {self.times.sessions_s:.1f}s"
        )
        yield (
            f"  3 clients:  {self.round_trips} round trips in {self.times.clients_s:.1f}s = "
            f"{self.throughput:.0f} round trips/s; {self.rewaits} extra AwaitIdle calls "
            "(settled before the echo showed)"
        )
        if self.cpu_s:
            cpu = ", ".join(f"{name} {sec:.1f}s" for name, sec in self.cpu_s.items())
            yield f"              CPU time in phase 3: {cpu}"
        yield ""
        yield "phase-3 latency, ms        n      p50      p90      p99      max"
        for kind in ("round trip", "SendInput", "AwaitIdle", "GetScreen"):
            samples = self.latencies_ns.get(kind, [])
            if samples:
                p50, p90, p99, top = (percentile(samples, q) for q in (50, 90, 99, 100))
                yield (
                    f"  {kind:<20} {len(samples):>8} {p50 / 1e6:>8.2f} {p90 / 1e6:>8.2f} "
                    f"{p99 / 1e6:>8.2f} {top / 1e6:>8.2f}"
                )
        yield ""
        yield from self._stats_lines()
        yield ""
        yield "memory per session (RSS with the phase-2 sessions minus RSS just before)"
        for name, per in self.memory_per_session().items():
            yield f"  {name:<10} {per / 1024:8.0f} KiB  ({self.sessions_per_server[name]} sessions)"
        if self.shell_rss_bytes:
            avg = sum(self.shell_rss_bytes) / len(self.shell_rss_bytes)
            yield (
                f"  each bash process itself: {avg / 1024:.0f} KiB RSS on average "
                "(shared pages included)"
            )
        yield ""
        yield (
            f"failed calls: {self.failures.total_calls}"
            + (f" ({dict(self.failures.calls)})" if self.failures.calls else "")
            + f"; wrong screens: {self.failures.wrong_screens}"
        )
        for example in self.failures.examples:
            yield f"  {example}"
        yield "server exit codes: " + ", ".join(f"{n} {c}" for n, c in self.exit_codes.items())
        problems = self.problems()
        yield "RESULT: " + ("PASS" if not problems else "FAIL")
        for problem in problems:
            yield f"  {problem}"

    def _stats_lines(self) -> Iterator[str]:
        yield "server stats, each settled after its phase (GetServerInfo of each server)"
        header = (
            f"  {'server':<10} {'checkpoint':<14} {'sessions':>8} {'fds':>6} {'children':>8} "
            f"{'tasks':>6} {'rss MiB':>8}"
        )
        yield header
        base = self.checkpoint("baseline").servers
        final = self.checkpoints[-1].servers
        for name in (HUB, *BACKENDS):
            for point in self.checkpoints:
                s = point.servers[name]
                mark = "" if point.settled else "  (did not settle)"
                if point.label == "loaded":
                    mark = "  (phase-2 sessions alive)"
                yield (
                    f"  {name:<10} {point.label:<14} {s.sessions:>8} {s.open_fds:>6} "
                    f"{s.child_processes:>8} {s.tasks:>6} {mib(s.rss_bytes):>8.1f}{mark}"
                )
            b, f = base[name], final[name]
            yield (
                f"  {name:<10} {'growth':<14} {f.sessions - b.sessions:>+8} "
                f"{f.open_fds - b.open_fds:>+6} {f.child_processes - b.child_processes:>+8} "
                f"{f.tasks - b.tasks:>+6} {mib(f.rss_bytes - b.rss_bytes):>+8.1f}"
            )


def mib(n: float) -> float:
    return n / (1024 * 1024)


def percentile(samples: Sequence[int], q: float) -> int:
    """Nearest-rank percentile: a value that was actually observed."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- the cluster ----------------------------------------------------------------


class SoakCluster:
    """The hub and backend processes, each with its own config file and log."""

    def __init__(self, scratch: Path, max_sessions: int) -> None:
        def proc(name: str) -> ServerProc:
            return ServerProc(
                name,
                "--config",
                str(scratch / f"{name}.toml"),
                "--max-sessions",
                str(max_sessions),
                log_path=scratch / f"{name}.log",
            )

        self.procs = {name: proc(name) for name in (HUB, *BACKENDS)}

    @property
    def hub(self) -> ServerProc:
        return self.procs[HUB]

    def start(self) -> None:
        for proc in self.procs.values():
            proc.start()

    def stop(self) -> dict[str, int]:
        """SIGTERM every server that runs; returns the exit codes (-9: had to be killed)."""
        codes = {}
        for name, proc in self.procs.items():
            if proc.proc is None:
                continue
            try:
                codes[name] = proc.stop()
            except subprocess.TimeoutExpired:
                codes[name] = -signal.SIGKILL
        return codes


async def _sample(clients: dict[str, AsyncClient]) -> dict[str, ServerSample]:
    infos = await asyncio.gather(*(c.get_server_info() for c in clients.values()))
    return {
        name: ServerSample(
            sessions=info.stats.sessions,
            open_fds=info.stats.open_fds,
            child_processes=info.stats.child_processes,
            tasks=info.stats.tasks,
            rss_bytes=info.stats.rss_bytes,
            links=info.stats.links,
            races=info.stats.races,
        )
        for name, info in zip(clients, infos, strict=True)
    }


async def _settle(
    label: str,
    clients: dict[str, AsyncClient],
    baseline: Checkpoint | None,
    cfg: SoakConfig,
) -> Checkpoint:
    """Sample until every server is back within tolerance of the baseline (or time is up)."""
    deadline = time.monotonic() + cfg.settle_s
    while True:
        servers = await _sample(clients)
        if baseline is None:
            return Checkpoint(label, servers)
        back = all(
            s.sessions == 0
            and s.child_processes <= baseline.servers[n].child_processes
            and s.open_fds <= baseline.servers[n].open_fds + cfg.fd_tolerance
            and s.tasks <= baseline.servers[n].tasks + cfg.task_tolerance
            for n, s in servers.items()
        )
        if back or time.monotonic() > deadline:
            return Checkpoint(label, servers, settled=back)
        await asyncio.sleep(SETTLE_POLL_S)


# -- the phases -----------------------------------------------------------------


class _Driver:
    """Runs the phases against a started cluster, recording into a report."""

    def __init__(self, cfg: SoakConfig, cluster: SoakCluster, report: SoakReport) -> None:
        self.cfg = cfg
        self.cluster = cluster
        self.report = report
        self.servers = (HUB, *BACKENDS)
        self.hub = AsyncClient(cluster.hub.addr, timeout=RPC_TIMEOUT_S)
        # Stats come from each server itself: GetServerInfo describes the
        # process that answers it.
        self.direct = {
            name: AsyncClient(proc.addr, timeout=RPC_TIMEOUT_S)
            for name, proc in cluster.procs.items()
        }

    def _cpu(self) -> dict[str, float]:
        """CPU seconds of every server process and of this one (the clients)."""
        used = {name: _cpu_seconds(proc.pid) for name, proc in self.cluster.procs.items()}
        used["driver"] = time.process_time()
        return used

    async def close(self) -> None:
        await asyncio.gather(self.hub.close(), *(c.close() for c in self.direct.values()))

    async def call(self, method: str, pending: Awaitable[object]) -> bool:
        """One call whose failure is counted, not raised; True when it succeeded."""
        try:
            await pending
        except (WshRpcError, TimeoutError) as err:
            self.report.failures.failed(method, err)
            return False
        return True

    async def link_backends(self) -> None:
        for name in BACKENDS:
            added = await self.hub.add_server(self.cluster.procs[name].url, wait=True)
            if added.health != hub_pb2.SERVER_HEALTH_HEALTHY:
                raise RuntimeError(f"backend {name} did not become healthy: {added}")

    async def checkpoint(self, label: str) -> None:
        baseline = self.report.checkpoints[0] if self.report.checkpoints else None
        self.report.checkpoints.append(await _settle(label, self.direct, baseline, self.cfg))

    async def create_shell(self, client: AsyncClient, name: str, server: str) -> bool:
        """A shell whose prompt has settled."""
        return await self.call(
            "CreateSession",
            client.create_session(name, server=server, command=SHELL, env=SHELL_ENV),
        ) and await self.call(
            "AwaitIdle",
            client.await_idle(
                name, server=server, timeout_ms=STARTUP_IDLE_MS, max_wait_ms=WAIT_MAX_MS
            ),
        )

    async def kill(self, client: AsyncClient, name: str, server: str) -> None:
        await self.call("KillSession", client.kill_session(name, server=server))

    async def warm_up(self) -> None:
        """One session per server and one echo, so that lazily made resources
        (thread pools, connections) are in the baseline and not counted as growth."""
        for server in self.servers:
            name = f"warm-{server}"
            if await self.create_shell(self.hub, name, server):
                await self.echo(self.hub, name, server, f"warm-{server}", {})
            await self.kill(self.hub, name, server)

    # -- phase 1 ----------------------------------------------------------------

    async def cycles(self) -> None:
        cfg = self.cfg
        half = cfg.cycles // 2
        start = time.monotonic()
        await self._cycle_range(0, half)
        self.report.times.cycles_s += time.monotonic() - start
        await self.checkpoint("cycles half")
        start = time.monotonic()
        await self._cycle_range(half, cfg.cycles)
        self.report.times.cycles_s += time.monotonic() - start
        await self.checkpoint("after cycles")

    async def _cycle_range(self, first: int, end: int) -> None:
        numbers = iter(range(first, end))

        async def worker() -> None:
            for i in numbers:  # shared iterator: each cycle is taken once
                server = self.servers[i % len(self.servers)]
                name = f"cycle-{i}"
                created = await self.call(
                    "CreateSession",
                    self.hub.create_session(name, server=server, command=SHELL, env=SHELL_ENV),
                )
                if not created:
                    continue
                # Odd cycles kill a settled shell, even ones a shell still starting.
                if i % 2:
                    await self.call(
                        "AwaitIdle",
                        self.hub.await_idle(
                            name,
                            server=server,
                            timeout_ms=STARTUP_IDLE_MS,
                            max_wait_ms=WAIT_MAX_MS,
                        ),
                    )
                await self.kill(self.hub, name, server)
                self.report.cycles_done += 1

        await asyncio.gather(*(worker() for _ in range(self.cfg.cycle_workers)))

    # -- phase 2 ----------------------------------------------------------------

    async def sessions(self) -> None:
        cfg = self.cfg
        start = time.monotonic()
        placed = [(f"many-{i}", self.servers[i % len(self.servers)]) for i in range(cfg.sessions)]
        self.report.sessions_per_server = {
            s: sum(1 for _, owner in placed if owner == s) for s in self.servers
        }
        gate = asyncio.Semaphore(CONCURRENT_CALLS)

        async def bounded(pending: Awaitable[T]) -> T:
            async with gate:
                return await pending

        created = await asyncio.gather(
            *(bounded(self.create_shell(self.hub, n, s)) for n, s in placed)
        )
        self.report.times.create_s = time.monotonic() - start
        alive = [p for p, ok in zip(placed, created, strict=True) if ok]
        # Every session is usable while all of them are alive.
        await asyncio.gather(
            *(bounded(self.echo(self.hub, n, s, f"ready-{n}", {})) for n, s in alive)
        )
        try:
            listed = await self.hub.list_sessions()
        except WshRpcError as err:
            self.report.failures.failed("ListSessions", err)
        else:
            names = {(s.name, s.server) for s in listed}
            self.report.listed_sessions = sum(1 for p in placed if p in names)
            self.report.shell_rss_bytes = [
                rss for s in listed if (rss := _process_rss(s.pid)) is not None
            ]
        # No settling here: this sample is the load itself.
        self.report.checkpoints.append(Checkpoint("loaded", await _sample(self.direct)))
        await asyncio.gather(*(bounded(self.kill(self.hub, n, s)) for n, s in alive))
        self.report.times.sessions_s = time.monotonic() - start
        await self.checkpoint("after sessions")

    # -- phase 3 ----------------------------------------------------------------

    async def echo(
        self, client: AsyncClient, name: str, server: str, marker: str, lat: dict[str, list[int]]
    ) -> bool:
        """``echo marker``, AwaitIdle until the line shows, GetScreen; False on any failure."""
        cfg = self.cfg
        t0 = time.perf_counter_ns()
        try:
            sent = await client.send_input(name, f"echo {marker}\n", server=server)
            t1 = time.perf_counter_ns()
            idle = await client.await_idle(
                name,
                server=server,
                timeout_ms=cfg.idle_ms,
                max_wait_ms=WAIT_MAX_MS,
                last_generation=sent.generation,
            )
            # The session may settle between the echoed command and its output
            # when the machine is loaded; that is correct idle behaviour, so
            # wait on from that generation, within a bound.
            give_up = time.monotonic() + WAIT_MAX_MS / 1000
            while marker not in idle.screen.lines:
                if time.monotonic() > give_up:
                    self.report.failures.wrong(f"{server}/{name}: {marker!r} never showed")
                    return False
                self.report.rewaits += 1
                idle = await client.await_idle(
                    name,
                    server=server,
                    timeout_ms=cfg.idle_ms,
                    max_wait_ms=WAIT_MAX_MS,
                    last_generation=idle.generation,
                )
            t2 = time.perf_counter_ns()
            screen = await client.get_screen(name, server=server)
            t3 = time.perf_counter_ns()
        except (WshRpcError, TimeoutError) as err:
            self.report.failures.failed("echo round trip", err)
            return False
        if marker not in screen.lines or screen.generation < idle.generation:
            self.report.failures.wrong(
                f"{server}/{name}: GetScreen at generation {screen.generation} "
                f"(idle was {idle.generation}) lacks {marker!r}"
            )
            return False
        if idle.server != server or idle.session != name:
            self.report.failures.wrong(
                f"idle names {idle.server}/{idle.session}, not {server}/{name}"
            )
            return False
        for kind, ns in (
            ("SendInput", t1 - t0),
            ("AwaitIdle", t2 - t1),
            ("GetScreen", t3 - t2),
            ("round trip", t3 - t0),
        ):
            lat.setdefault(kind, []).append(ns)
        return True

    async def clients(self) -> None:
        cfg = self.cfg
        per_client: list[dict[str, list[int]]] = [{} for _ in range(cfg.clients)]
        counts = [0] * cfg.clients
        # The clock starts once every client has its session (or failed to).
        arrived = 0
        ready = asyncio.Event()

        def arrive() -> None:
            nonlocal arrived
            arrived += 1
            if arrived == cfg.clients:
                ready.set()

        async def client_loop(c: int) -> None:
            server = self.servers[c % len(self.servers)]
            name = f"client-{c}"
            # Its own channel: fifty clients are fifty connections to the hub.
            async with AsyncClient(self.cluster.hub.addr, timeout=RPC_TIMEOUT_S) as client:
                created = await self.create_shell(client, name, server)
                arrive()
                if not created:
                    return
                try:
                    await ready.wait()
                    stop_at = time.monotonic() + cfg.seconds
                    for i in itertools.count():
                        if time.monotonic() >= stop_at:
                            break
                        if await self.echo(client, name, server, f"soak-{c}-{i}", per_client[c]):
                            counts[c] += 1
                finally:
                    await self.kill(client, name, server)

        tasks = [asyncio.create_task(client_loop(c)) for c in range(cfg.clients)]
        await ready.wait()
        start = time.monotonic()
        cpu_before = self._cpu()
        await asyncio.gather(*tasks)
        # Kill time is included, as every client killed its session on its way out.
        self.report.times.clients_s = time.monotonic() - start
        cpu_after = self._cpu()
        self.report.cpu_s = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
        self.report.round_trips = sum(counts)
        for lat in per_client:
            for kind, samples in lat.items():
                self.report.latencies_ns.setdefault(kind, []).extend(samples)
        await self.checkpoint("after clients")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        # The command name may contain spaces: count fields after its ")".
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_rss(pid: int) -> int | None:
    """Resident memory of a session's process, read from /proc (same machine)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None


async def _drive(cfg: SoakConfig, cluster: SoakCluster, report: SoakReport) -> None:
    driver = _Driver(cfg, cluster, report)
    try:
        await driver.link_backends()
        await driver.warm_up()
        await driver.checkpoint("baseline")
        await driver.cycles()
        await driver.sessions()
        await driver.clients()
    finally:
        await driver.close()


def run_soak(cfg: SoakConfig, scratch: Path) -> SoakReport:
    """Start the cluster in ``scratch``, run the three phases, stop it; never raises
    on a failed call (they are counted), only when the cluster cannot run at all."""
    per_server = math.ceil(cfg.sessions / 3) + cfg.clients + cfg.cycle_workers
    cluster = SoakCluster(scratch, max_sessions=max(256, per_server))
    report = SoakReport(cfg)
    try:
        cluster.start()
        asyncio.run(_drive(cfg, cluster, report))
    finally:
        report.exit_codes = cluster.stop()
    return report
