"""Responsiveness: GetScreen on an idle session while another session of the
same server floods output.

Three conditions, one after the other: no flood, ``yes``, and
``cat /dev/urandom | base64``. In each, ~1000 GetScreen calls on the idle
session, one every millisecond (a new call starts 1 ms after the previous one
returned), timed one by one. tmux, for reference: ``capture-pane -p`` (a
process each) on an idle pane while another pane of the same server floods.
Target: wsh p99 under 20 ms during a flood.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import _harness as h

from wsh.v1 import hub_pb2

FLOODS = {"no flood": "", "yes": "yes", "base64": "cat /dev/urandom | base64"}
TARGET_P99_MS = 20.0
GAP_S = 0.001
FLOOD_WARMUP_S = 0.5  # let the flood reach full speed before measuring


def sample(call: Callable[[], object], count: int, budget_s: float) -> list[int]:
    """Time ``call`` one by one, pausing ``GAP_S`` between calls."""
    samples = []
    for _ in h.bounded(count, budget_s):
        start = h.now_ns()
        call()
        samples.append(h.now_ns() - start)
        time.sleep(GAP_S)
    return samples


def generation(hub: h.HubStub, name: str) -> int:
    """How many output chunks and inputs a session has seen."""
    return hub.GetSession(  # type: ignore[no-any-return]
        hub_pb2.GetSessionRequest(name=name), timeout=h.RPC_TIMEOUT
    ).session.generation


def main() -> None:
    args = h.parse_args(__doc__ or "")
    wsh_calls, tmux_calls, budget_s = (200, 50, 10.0) if args.quick else (1000, 300, 60.0)
    wsh: dict[str, h.Stats] = {}
    peer: dict[str, h.Stats] = {}
    flood_rates: dict[str, float] = {}
    with h.bench_run("responsiveness") as (stack, scratch):
        server = h.start_server(stack, scratch, "resp")
        hub = h.connect(stack, server.addr)
        tmux = h.start_tmux(stack, scratch, "responsiveness")
        h.create_shell(hub, "idle")
        tmux.start_shell("idle")
        get_screen = hub_pb2.GetScreenRequest(name="idle")

        for label, flood in FLOODS.items():
            if flood:
                # A fresh flooding shell per condition: the previous flood's
                # backlog must not spill into this one.
                h.create_shell(hub, label)
                tmux.start_shell(label)
                hub.SendInput(
                    hub_pb2.SendInputRequest(name=label, data=f"{flood}\n".encode()),
                    timeout=h.RPC_TIMEOUT,
                )
                tmux.type_line(label, flood)
                time.sleep(FLOOD_WARMUP_S)
            before, start = generation(hub, label) if flood else 0, h.now_ns()
            wsh[label] = h.Stats.of(
                sample(
                    lambda: hub.GetScreen(get_screen, timeout=h.RPC_TIMEOUT), wsh_calls, budget_s
                )
            )
            if flood:
                flood_rates[label] = (generation(hub, label) - before) / (
                    (h.now_ns() - start) / 1e9
                )
            peer[label] = h.Stats.of(sample(lambda: tmux.screen("idle"), tmux_calls, budget_s))
            if flood:
                hub.KillSession(hub_pb2.KillSessionRequest(name=label), timeout=h.RPC_TIMEOUT)
                tmux("kill-session", "-t", label)

    rows = []
    for label, stats in wsh.items():
        target = TARGET_P99_MS if FLOODS[label] else None
        rows += [
            h.limit_row(f"{label}: median", stats.median, "ms", None, peer[label].median),
            h.limit_row(f"{label}: p99", stats.p99, "ms", target, peer[label].p99),
            h.limit_row(f"{label}: max", stats.max, "ms", None, peer[label].max),
        ]
    h.print_table(
        f"responsiveness: GetScreen on an idle session ({wsh['no flood'].n} calls; "
        f"tmux capture-pane: {peer['no flood'].n})",
        rows,
        "tmux",
    )
    for label, rate in flood_rates.items():
        print(f"{label} flood in wsh while measured: {rate:.0f} output chunks/s")


if __name__ == "__main__":
    main()
