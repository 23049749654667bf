"""Hostile input: can one client's traffic, or one session's output, stall the
server for everyone else?

Each attack (from ``bench/hostile_output.py`` and, when present,
``bench/hostile_peers.py`` and ``bench/hostile_backends.py``) runs against a
fresh ``wsh server``. While it plays, a probe client on its own channel calls
GetServerInfo every 10 ms and a sampler reads the server's RSS from
``/proc/PID/status`` every 50 ms. After the attack returns the probe goes on
for ``SETTLE_S`` so that work the attack left queued is measured too. One row
per attack: the worst and p99 GetServerInfo latency, failed probes, the peak
RSS (VmHWM) and the attack's own note. A server whose RSS passes
``--rss-cap-mb`` is killed so that a memory attack cannot hurt the machine;
the row says so.

Target: worst GetServerInfo delay < 50 ms (p99) for every attack.

    python bench/hostile.py                      # every attack, this tree's code
    python bench/hostile.py --only rep           # attacks whose name contains "rep"
    python bench/hostile.py --server-cwd ../old  # the same attacks against other code
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import multiprocessing
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _harness as h
import _hostile as hx
import grpc

from wsh.v1 import hub_pb2, hub_pb2_grpc

MODULES = ("hostile_output", "hostile_peers", "hostile_backends")
PROBE_INTERVAL_S = 0.010
RSS_INTERVAL_S = 0.050
SETTLE_S = 1.0
PROBE_TIMEOUT_S = 60.0
TARGET_P99_MS = 50.0
MB = 1024 * 1024


def probe(address: str, metadata: tuple[tuple[str, str], ...], stop: Any, out: Any) -> None:
    """GetServerInfo every ``PROBE_INTERVAL_S`` until ``stop`` is set; sends
    (latencies in ns, failures) through ``out``.

    It runs in a process of its own: in a thread of the benchmark, the
    attack's own work (parsing megabytes of screens) held the GIL and showed
    up as server delay.
    """
    channel = grpc.insecure_channel(address)
    stub = hub_pb2_grpc.HubServiceStub(channel)
    request = hub_pb2.GetServerInfoRequest()
    latencies: list[int] = []
    failures = 0
    try:
        while not stop.is_set():
            start = h.now_ns()
            try:
                stub.GetServerInfo(request, timeout=PROBE_TIMEOUT_S, metadata=metadata)
                latencies.append(h.now_ns() - start)
            except grpc.RpcError:
                failures += 1
            stop.wait(PROBE_INTERVAL_S)
    finally:
        channel.close()
        out.send((latencies, failures))


@dataclass(slots=True)
class RssSampler:
    """The server's RSS every ``RSS_INTERVAL_S``; kills it past ``cap`` bytes."""

    server: hx.ServerHandle
    cap: int
    peak: int = 0
    killed: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set() and self.server.alive():
            rss, hwm = hx.read_rss(self.server.pid)
            self.peak = max(self.peak, rss, hwm)
            if rss > self.cap:
                self.killed = True
                self.server.proc.kill()
                return
            self.stop.wait(RSS_INTERVAL_S)


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    stats: h.Stats | None
    failures: int
    start_rss: int
    peak_rss: int
    seconds: float
    note: str


def load_attacks(only: str) -> hx.Attacks:
    """Every module's ATTACKS, in MODULES order; a module not written yet is skipped."""
    attacks: hx.Attacks = []
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        attacks += [(name, fn) for name, fn in module.ATTACKS if only in name]
    return attacks


def run_attack(
    index: int, name: str, attack: hx.Attack, code: hx.ServerCode, scratch: Path, cap: int
) -> Outcome:
    workdir = scratch / f"attack{index}"
    workdir.mkdir()
    token = secrets.token_urlsafe(24)
    try:
        server = hx.start_server(code, workdir, f"hostile{index}", token=token)
    except (RuntimeError, TimeoutError) as err:
        log = (workdir / f"hostile{index}.log").read_text(errors="replace").strip()
        return Outcome(name, None, 0, 0, 0, 0.0, f"no server: {err}: {log[-200:]}")
    try:
        target = hx.Target(server.address, token, server.pid, workdir, code)
        start_rss, _ = hx.read_rss(server.pid)
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        receive, send = context.Pipe(duplex=False)
        prober = context.Process(
            target=probe, args=(server.address, target.metadata(), stop, send), daemon=True
        )
        prober.start()
        sampler = RssSampler(server, cap)
        thread = threading.Thread(target=sampler.run, name="rss", daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            note = asyncio.run(asyncio.wait_for(attack(target), hx.ATTACK_TIMEOUT_S))
        except TimeoutError:
            note = f"attack timed out after {hx.ATTACK_TIMEOUT_S:.0f}s"
        except grpc.aio.AioRpcError as err:
            note = f"attack failed: {err.code().name}: {err.details()}"
        except Exception as err:  # one attack's failure must not stop the others
            note = f"attack failed: {type(err).__name__}: {err}"
        seconds = time.monotonic() - started
        time.sleep(SETTLE_S)
        stop.set()
        sampler.stop.set()
        thread.join(5)
        latencies, failures = receive.recv() if receive.poll(PROBE_TIMEOUT_S + 5) else ([], 0)
        prober.join(5)
        _, hwm = hx.read_rss(server.pid)
        if sampler.killed:
            note = f"KILLED at RSS cap {cap // MB} MB; {note}"
        elif not server.alive():
            note = f"server died ({server.proc.returncode}); {note}"
        stats = h.Stats.of(latencies) if latencies else None
        return Outcome(name, stats, failures, start_rss, max(sampler.peak, hwm), seconds, note)
    finally:
        server.stop()


def print_outcomes(outcomes: list[Outcome]) -> None:
    header = ("attack", "worst", "p99", "probes", "failed", "RSS start", "RSS peak", "time", "note")
    cells = [header]
    for o in outcomes:
        cells.append(
            (
                o.name,
                f"{o.stats.max:.0f} ms" if o.stats else "-",
                f"{o.stats.p99:.0f} ms" if o.stats else "-",
                str(o.stats.n if o.stats else 0),
                str(o.failures),
                f"{o.start_rss / MB:.0f} MB",
                f"{o.peak_rss / MB:.0f} MB",
                f"{o.seconds:.1f} s",
                o.note,
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    for i, line in enumerate(cells):
        print(
            "  ".join(
                cell.ljust(w) if col in (0, len(header) - 1) else cell.rjust(w)
                for col, (cell, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    missed = [o.name for o in outcomes if o.stats is None or o.stats.p99 >= TARGET_P99_MS]
    print(
        f"target: GetServerInfo p99 < {TARGET_P99_MS:.0f} ms during every attack: "
        + (f"MISS ({', '.join(missed)})" if missed else "PASS")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", default="", help="run the attacks whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the attacks and exit")
    parser.add_argument("--server-python", default=sys.executable, help="interpreter of the server")
    parser.add_argument(
        "--server-cwd", type=Path, default=hx.REPO, help="directory `python -m wsh` runs from"
    )
    parser.add_argument("--rss-cap-mb", type=int, default=2048, help="kill a server past this RSS")
    args = parser.parse_args()
    attacks = load_attacks(args.only)
    if args.list:
        print("\n".join(name for name, _ in attacks))
        return
    code = hx.ServerCode(args.server_python, args.server_cwd.resolve())
    print(f"hostile: {h.machine_summary()}; server code in {code.cwd}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="wsh-bench-hostile-"))
    previous = signal.signal(signal.SIGTERM, h._raise_interrupt)
    outcomes: list[Outcome] = []
    try:
        for index, (name, attack) in enumerate(attacks):
            outcome = run_attack(index, name, attack, code, scratch, args.rss_cap_mb * MB)
            print(f"  {name}: {outcome.note}", flush=True)
            outcomes.append(outcome)
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(OSError):
            shutil.rmtree(scratch)
    print()
    print_outcomes(outcomes)


if __name__ == "__main__":
    main()
