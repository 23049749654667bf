"""READY idle waits: round trip, correctness at scale, and the cost of waiting.

1. Round trip: type ``echo <token>``, then AwaitIdle with ``mode`` READY from
   SendInput's generation (one call, no retry), and check the token and the
   next prompt on the returned screen. Against, in the same runs (turns
   rotate): wsh's visible round trip (SendInput, then GetScreen back to back
   until the token shows), tmux's CLI (``send-keys`` + ``capture-pane``,
   a process each) and tmux control mode (``tmux -C``).
   Targets: median <= 0.5x tmux CLI, <= 1.5x wsh visible; never early: no
   returned screen without the token or without the prompt after it.
2. Correctness at scale: a hub and a backend, 50 bash sessions on each,
   each sent ``sleep <0.2-3 s>; echo done-<n>``, raced READY (fallback quiet
   300 ms, which a quiet race would hit while every sleep runs). Every
   settle must show its ``done-<n>`` line and the prompt after it.
3. Cost: one server with 200 bash sessions at their prompt, 50 of which run
   ``sleep 600`` with a READY AwaitIdle open on each; the server's CPU time
   (utime + stime from /proc) over 10 s. Target: under 2% of one core.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable

import _harness as h
import grpc
from roundtrip import tmux_cli_probe, tmux_control_probe, visible_probe

from wsh.v1 import hub_pb2

WAIT_S = 10.0
WARMUP_RUNS = 5
SCALE_SESSIONS = 50  # per server
COST_SESSIONS, COST_WAITS, COST_WINDOW_S = 200, 50, 10.0


def ready_probe(hub: h.HubStub, session: str, early: list[str]) -> Callable[[str], int]:
    def probe(token: str) -> int:
        start = h.now_ns()
        generation = hub.SendInput(
            hub_pb2.SendInputRequest(name=session, data=f"echo {token}\n".encode()),
            timeout=h.RPC_TIMEOUT,
        ).generation
        idle = hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(
                name=session,
                timeout_ms=60_000,
                max_wait_ms=int(WAIT_S * 1000),
                last_generation=generation,
                mode=hub_pb2.IDLE_MODE_READY,
            ),
            timeout=WAIT_S + h.RPC_TIMEOUT,
        ).idle
        elapsed = h.now_ns() - start
        lines = [line for line in idle.screen.lines if line]
        if lines[-2:] != [token, h.PROMPT_LINE] or not idle.ready:
            early.append(f"{token}: {lines[-3:]}")
        return elapsed

    return probe


def roundtrip(runs: int, budget_s: float) -> None:
    with h.bench_run("ready-roundtrip") as (stack, scratch):
        server = h.start_server(stack, scratch, "rt")
        hub = h.connect(stack, server.addr)
        tmux = h.start_tmux(stack, scratch, "ready")
        h.create_shell(hub, "ready")
        h.create_shell(hub, "visible")
        tmux.start_shell("cli")
        tmux.start_shell("ctl")
        control = h.attach_control(stack, tmux, "ctl")
        early: list[str] = []
        probes = {
            "ready": ready_probe(hub, "ready", early),
            "visible": visible_probe(hub, "visible"),
            "cli": tmux_cli_probe(tmux, "cli"),
            "control": tmux_control_probe(control, "ctl"),
        }
        names = list(probes)
        for name in names:
            for _ in range(WARMUP_RUNS):
                probes[name](uuid.uuid4().hex[:12])
        early.clear()
        samples: dict[str, list[int]] = {name: [] for name in names}
        for run in h.bounded(runs, budget_s):
            shift = run % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(probes[name](uuid.uuid4().hex[:12]))

    stats = {name: h.Stats.of(s) for name, s in samples.items()}
    ready, vis, cli, ctl = stats["ready"], stats["visible"], stats["cli"], stats["control"]
    rows = [
        h.ratio_row("median, AwaitIdle READY vs tmux CLI", ready.median, cli.median, "ms", 0.5),
        h.ratio_row("p99,    AwaitIdle READY vs tmux CLI", ready.p99, cli.p99, "ms", None),
        h.ratio_row("median, AwaitIdle READY vs tmux -C", ready.median, ctl.median, "ms", None),
        h.ratio_row("p99,    AwaitIdle READY vs tmux -C", ready.p99, ctl.p99, "ms", None),
    ]
    h.print_table(f"ready: echo <token>, READY round trip, {cli.n} runs each", rows, "tmux")
    rows = [
        h.ratio_row("median, AwaitIdle READY vs visible", ready.median, vis.median, "ms", 1.5),
        h.ratio_row("p99,    AwaitIdle READY vs visible", ready.p99, vis.p99, "ms", None),
    ]
    h.print_table("ready: against wsh's own visible round trip", rows, "visible")
    print(f"READY screens without the token or the prompt after it: {len(early)}/{ready.n}")
    for line in early[:5]:
        print(f"  early: {line}")


def at_scale(seed: int) -> None:
    rng = random.Random(seed)
    with h.bench_run("ready-scale") as (stack, scratch):
        backend = h.start_server(stack, scratch, "be")
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        h.add_backends(hub, [backend])
        sessions = {}
        for n in range(2 * SCALE_SESSIONS):
            server = "be" if n % 2 else ""
            name = f"job{n}"
            h.create_shell(hub, name, server, tags=["scale"])
            sessions[name] = (server, round(rng.uniform(0.2, 3.0), 2))
        started = time.monotonic()
        for name, (server, seconds) in sessions.items():
            hub.SendInput(
                hub_pb2.SendInputRequest(
                    server=server, name=name, data=f"sleep {seconds}; echo done-{name}\n".encode()
                ),
                timeout=h.RPC_TIMEOUT,
            )
        stream = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(
                tags=["scale"], timeout_ms=300, max_wait_ms=20_000, mode=hub_pb2.IDLE_MODE_READY
            ),
            timeout=60,
        )
        wrong, seen, late = [], set(), 0.0
        try:
            for response in stream:
                idle = response.idle
                lines = [line for line in idle.screen.lines if line]
                if lines[-2:] != [f"done-{idle.session}", h.PROMPT_LINE]:
                    wrong.append(
                        f"{idle.server}/{idle.session}: {lines[-2:]} (ready {idle.ready}, "
                        f"unknown {idle.ready_unknown}, foreground {idle.foreground!r})"
                    )
                seen.add(idle.session)
                at = time.monotonic() - started
                late = max(late, at - sessions[idle.session][1])
                if len(seen) == len(sessions):
                    break
        finally:
            stream.cancel()
    print(
        f"\nready-scale: {len(sessions)} sessions ({SCALE_SESSIONS} on the hub, "
        f"{SCALE_SESSIONS} on a backend), sleep 0.2-3 s then echo, raced READY "
        f"(fallback quiet 300 ms)"
    )
    print(f"  settles: {len(seen)}; before their own output and prompt: {len(wrong)}")
    print(f"  latest settle after its sleep ended (send and race start included): {late:.2f} s")
    for line in wrong[:5]:
        print(f"  wrong: {line}")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cost() -> None:
    with h.bench_run("ready-cost") as (stack, scratch):
        server = h.start_server(stack, scratch, "cost")
        hub = h.connect(stack, server.addr)
        for n in range(COST_SESSIONS):
            h.create_shell(hub, f"s{n}")
        waits = []
        for n in range(COST_WAITS):
            hub.SendInput(
                hub_pb2.SendInputRequest(name=f"s{n}", data=b"sleep 600\n"), timeout=h.RPC_TIMEOUT
            )
        time.sleep(1.0)
        for n in range(COST_WAITS):
            waits.append(
                hub.AwaitIdle.future(
                    hub_pb2.AwaitIdleRequest(
                        name=f"s{n}",
                        timeout_ms=60_000,
                        max_wait_ms=120_000,
                        mode=hub_pb2.IDLE_MODE_READY,
                    ),
                    timeout=150,
                )
            )
        # Past the waits' first re-checks (10 ms doubling to 200 ms).
        time.sleep(2.0)
        assert server.proc is not None
        pid = server.proc.pid
        before, t0 = cpu_s(pid), time.monotonic()
        time.sleep(COST_WINDOW_S)
        used, elapsed = cpu_s(pid) - before, time.monotonic() - t0
        still_open = sum(1 for w in waits if not w.done())
        for w in waits:
            w.cancel()
        idle_before, t1 = cpu_s(pid), time.monotonic()
        time.sleep(COST_WINDOW_S / 2)
        idle_used = cpu_s(pid) - idle_before
        idle_elapsed = time.monotonic() - t1
    share = 100 * used / elapsed
    rows = [
        h.limit_row(
            f"server CPU, {COST_SESSIONS} sessions, {COST_WAITS} READY waits open",
            share,
            "%",
            2.0,
        ),
    ]
    h.print_table("ready-cost: an idle server while READY waits are open", rows)
    print(f"  waits still open at the end of the window: {still_open}/{COST_WAITS}")
    print(
        f"  same server once the waits were cancelled: {100 * idle_used / idle_elapsed:.2f}% "
        "of a core"
    )


def main() -> None:
    args = h.parse_args(__doc__ or "")
    runs, budget_s = (30, 20.0) if args.quick else (400, 150.0)
    roundtrip(runs, budget_s)
    at_scale(seed=10)
    cost()


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as err:
        raise SystemExit(f"ready: {err}") from None
