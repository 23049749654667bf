"""Spawn: a new bash session until its first prompt is on the screen.

wsh: CreateSession, then GetScreen every 2 ms until the prompt shows.
tmux: ``tmux new-session -d``, then ``capture-pane -p`` every 2 ms (a
process each), on a server that is already running (as the wsh server is);
and for reference the same two commands over one ``tmux -C`` connection.
Every session is killed after its run, untimed. The variants take turns.
Target: wsh's median below tmux CLI's.
"""

from __future__ import annotations

from collections.abc import Callable

import _harness as h

from wsh.v1 import hub_pb2

WAIT_S = 10.0


def main() -> None:
    args = h.parse_args(__doc__ or "")
    runs, budget_s = (10, 20.0) if args.quick else (50, 120.0)
    with h.bench_run("spawn") as (stack, scratch):
        server = h.start_server(stack, scratch, "spawn")
        hub = h.connect(stack, server.addr)
        tmux = h.start_tmux(stack, scratch, "spawn")
        tmux.start_shell("keeper")
        control = h.attach_control(stack, tmux, "keeper")

        def wsh_spawn(name: str) -> int:
            start = h.now_ns()
            h.create_shell(hub, name)
            elapsed = h.now_ns() - start
            hub.KillSession(hub_pb2.KillSessionRequest(name=name), timeout=h.RPC_TIMEOUT)
            return elapsed

        def tmux_spawn(name: str) -> int:
            start = h.now_ns()
            tmux.start_shell(name)
            elapsed = h.now_ns() - start
            tmux("kill-session", "-t", name)
            return elapsed

        def control_spawn(name: str) -> int:
            start = h.now_ns()
            control.command(f"new-session -d -s {name} -x {h.COLS} -y {h.ROWS} '{h.SHELL}'")
            h.poll_until(
                lambda: (
                    True if h.PROMPT_LINE in control.command(f"capture-pane -p -t {name}") else None
                ),
                WAIT_S,
                h.PROMPT_POLL_S,
                f"prompt of {name}",
            )
            elapsed = h.now_ns() - start
            control.command(f"kill-session -t {name}")
            return elapsed

        spawns: dict[str, Callable[[str], int]] = {
            "wsh": wsh_spawn,
            "cli": tmux_spawn,
            "control": control_spawn,
        }
        names = list(spawns)
        samples: dict[str, list[int]] = {name: [] for name in names}
        for run in h.bounded(runs, budget_s):
            shift = run % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(spawns[name](f"{name}{run}"))

    stats = {name: h.Stats.of(s) for name, s in samples.items()}
    wsh, cli, ctl = stats["wsh"], stats["cli"], stats["control"]
    rows = [
        h.ratio_row("median vs tmux CLI", wsh.median, cli.median, "ms", 1.0),
        h.ratio_row("p99 vs tmux CLI", wsh.p99, cli.p99, "ms", None),
        h.ratio_row("median vs tmux -C", wsh.median, ctl.median, "ms", None),
        h.ratio_row("p99 vs tmux -C", wsh.p99, ctl.p99, "ms", None),
    ]
    h.print_table(f"spawn: new session until its prompt shows, {wsh.n} runs each", rows, "tmux")


if __name__ == "__main__":
    main()
