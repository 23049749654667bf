"""Hubs: forwarded calls per second with one hub and with two hubs behind Envoy.

Two backends, each with an idle bash session ("screen") and a session that
reads and discards its input with the echo off ("sink"), and two hubs that
both register both backends. A load of 16, then 64 concurrent callers
(asyncio, one client process, four channels) loops over GetScreen and
SendInput of the sessions on both backends, each call naming its backend,
for 8 s after 1 s of warm-up, in three set-ups:
  direct: straight to hub-1 (no Envoy; the reference);
  envoy-1: through Envoy in front of hub-1 alone;
  envoy-2: through Envoy in front of hub-1 and hub-2, round robin.
Envoy runs the config of docs/HUBS.md. Each set-up runs 3 times per load,
interleaved; the table shows the median round. CPU of every process
(utime + stime from /proc) over each window gives the hubs' CPU per
forwarded call. No target: on a machine with fewer cores than the
processes that share them (client, Envoy, hubs, backends), a second hub
cannot add much; the figures say how much.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from dataclasses import dataclass

import _harness as h
import grpc

from tests.envoy import Envoy, hubs_config
from tests.procs import ServerProc
from wsh.v1 import hub_pb2, hub_pb2_grpc

LOADS = (16, 64)
CHANNELS = 4
SINK = "stty -echo; exec cat >/dev/null"
BACKENDS = ("build-1", "build-2")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Round:
    calls: int
    seconds: float
    errors: int
    cpu: dict[str, float]  # process -> CPU seconds in the window

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def share(self, *names: str) -> float:
        """Cores used by ``names`` together over the window, in %."""
        return 100 * sum(self.cpu[n] for n in names) / self.seconds

    def per_call_ms(self, *names: str) -> float:
        return 1000 * sum(self.cpu[n] for n in names) / self.calls


async def load(
    addr: str, clients: int, warmup_s: float, window_s: float, pids: dict[str, int]
) -> Round:
    """``clients`` callers against ``addr``; counts calls and CPU after ``warmup_s``."""
    channels = [grpc.aio.insecure_channel(addr) for _ in range(CHANNELS)]
    stubs = [hub_pb2_grpc.HubServiceStub(c) for c in channels]
    requests = [
        (method, request)
        for server in BACKENDS
        for method, request in (
            ("GetScreen", hub_pb2.GetScreenRequest(server=server, name="screen")),
            ("SendInput", hub_pb2.SendInputRequest(server=server, name="sink", data=b"x")),
        )
    ]
    counting = False
    calls = errors = 0
    stop = time.monotonic() + warmup_s + window_s

    async def caller(i: int) -> None:
        nonlocal calls, errors
        stub = stubs[i % CHANNELS]
        for method, request in itertools.islice(itertools.cycle(requests), i % len(requests), None):
            if time.monotonic() >= stop:
                return
            try:
                await getattr(stub, method)(request, timeout=h.RPC_TIMEOUT)
            except grpc.aio.AioRpcError:
                errors += counting
                continue
            calls += counting

    try:
        tasks = [asyncio.create_task(caller(i), name=f"caller-{i}") for i in range(clients)]
        await asyncio.sleep(warmup_s)
        counting = True
        calls = 0
        cpu0 = {name: cpu_s(pid) for name, pid in pids.items()}
        t0 = time.monotonic()
        await asyncio.gather(*tasks)
        seconds = time.monotonic() - t0
        cpu = {name: cpu_s(pid) - cpu0[name] for name, pid in pids.items()}
    finally:
        for task in tasks:
            task.cancel()
        for channel in channels:
            await channel.close()
    return Round(calls, seconds, errors, cpu)


SETUPS = ("direct", "envoy-1", "envoy-2")


def main() -> None:
    args = h.parse_args(__doc__ or "")
    rounds, warmup_s, window_s = (1, 0.5, 2.0) if args.quick else (3, 1.0, 8.0)
    loads = LOADS[:1] if args.quick else LOADS
    results: dict[tuple[int, str], list[Round]] = {(n, s): [] for n in loads for s in SETUPS}
    with h.bench_run("hubs") as (stack, scratch):
        backends = [h.start_server(stack, scratch, name) for name in BACKENDS]
        hubs: list[ServerProc] = [h.start_server(stack, scratch, n) for n in ("hub-1", "hub-2")]
        for proc in hubs:
            h.add_backends(h.connect(stack, proc.addr), backends)
        for proc in backends:
            direct = h.connect(stack, proc.addr)
            h.create_shell(direct, "screen")
            direct.CreateSession(
                hub_pb2.CreateSessionRequest(name="sink", command=SINK), timeout=h.RPC_TIMEOUT
            )
        envoys: dict[str, Envoy] = {}
        for name, upstreams in (("envoy-1", hubs[:1]), ("envoy-2", hubs)):
            addrs = [p.addr for p in upstreams]
            tmp = scratch / name
            tmp.mkdir()
            envoy = Envoy(tmp, config=lambda port, addrs=addrs: hubs_config(port, addrs))
            stack.callback(envoy.kill)
            envoys[name] = envoy.start()
        addr = {"direct": hubs[0].addr} | {name: e.addr for name, e in envoys.items()}
        pids = {
            "client": os.getpid(),
            "hub-1": hubs[0].pid,
            "hub-2": hubs[1].pid,
            "backend-1": backends[0].pid,
            "backend-2": backends[1].pid,
        }
        for clients in loads:
            for run in range(rounds):
                for setup in SETUPS[run % 3 :] + SETUPS[: run % 3]:
                    envoy_proc = envoys[setup].proc if setup in envoys else None
                    watched = pids | ({"envoy": envoy_proc.pid} if envoy_proc else {})
                    result = asyncio.run(load(addr[setup], clients, warmup_s, window_s, watched))
                    results[(clients, setup)].append(result)
                    print(
                        f"  {clients} callers, round {run + 1}, {setup}: "
                        f"{result.rate:.0f} calls/s, {result.errors} errors, "
                        f"hubs {result.share('hub-1', 'hub-2'):.0f}% of a core",
                        flush=True,
                    )
    for clients in loads:
        report(clients, {setup: results[(clients, setup)] for setup in SETUPS})


def report(clients: int, results: dict[str, list[Round]]) -> None:
    print(f"\nhubs: GetScreen + SendInput through hubs, {clients} concurrent callers")
    header = (
        "set-up",
        "calls/s",
        "errors",
        "hub-1 %",
        "hub-2 %",
        "hub ms/call",
        "backends %",
        "envoy %",
        "client %",
    )
    cells = [header]
    for setup, runs in results.items():
        r = sorted(runs, key=lambda x: x.rate)[len(runs) // 2]
        cells.append(
            (
                setup,
                f"{r.rate:.0f}",
                str(sum(x.errors for x in runs)),
                f"{r.share('hub-1'):.0f}",
                f"{r.share('hub-2'):.0f}",
                f"{r.per_call_ms('hub-1', 'hub-2'):.2f}",
                f"{r.share('backend-1', 'backend-2'):.0f}",
                f"{r.share('envoy'):.0f}" if "envoy" in r.cpu else "-",
                f"{r.share('client'):.0f}",
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    rates = {setup: statistics.median(x.rate for x in runs) for setup, runs in results.items()}
    print(
        f"two hubs / one hub behind Envoy: {rates['envoy-2'] / rates['envoy-1']:.2f}x; "
        f"Envoy to one hub / direct: {rates['envoy-1'] / rates['direct']:.2f}x; "
        f"cores: {os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
