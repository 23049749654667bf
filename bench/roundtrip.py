"""Round trip: type ``echo <token>`` and wait until the token's output line is
on the screen, in wsh and in tmux.

wsh, as an agent would drive it:
  await: SendInput, then AwaitIdle(last_generation=<SendInput's generation>,
         timeout_ms=T) and look for the token on the returned screen; if it
         is not there yet (a miss), AwaitIdle again from the returned generation.
  visible: SendInput, then GetScreen back to back until the token shows: the
         pure "output is visible" latency, without any idle window.
tmux:
  CLI: ``tmux send-keys``, then ``tmux capture-pane -p`` back to back, each
       its own process, as a script would do it.
  control: the same two commands over one ``tmux -C`` connection (reference).

The variants take turns within every run, so drift hits them all alike.
Target: wsh (await, T=20 ms) median at most 0.5x tmux CLI's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import _harness as h

AWAIT_TIMEOUTS_MS = (20, 5, 2)
TARGET_RATIO = 0.5
WAIT_S = 10.0  # one run's bound; a healthy run takes milliseconds
WARMUP_RUNS = 5


class AwaitProbe:
    """The agent loop on one session, counting runs whose first idle screen
    did not show the token yet."""

    def __init__(self, hub: h.HubStub, session: str, timeout_ms: int) -> None:
        self.hub = hub
        self.session = session
        self.timeout_ms = timeout_ms
        self.misses = 0

    def __call__(self, token: str) -> int:
        start = h.now_ns()
        calls = h.send_await(
            self.hub, self.session, f"echo {token}\n".encode(), token, self.timeout_ms, WAIT_S
        )
        elapsed = h.now_ns() - start
        self.misses += calls > 1
        return elapsed


def visible_probe(hub: h.HubStub, session: str) -> Callable[[str], int]:
    """SendInput, then GetScreen back to back until the token shows."""

    def probe(token: str) -> int:
        start = h.now_ns()
        h.send_poll(hub, session, f"echo {token}\n".encode(), token, 0.0, WAIT_S)
        return h.now_ns() - start

    return probe


def tmux_cli_probe(tmux: h.Tmux, target: str) -> Callable[[str], int]:
    """send-keys, then capture-pane back to back, a process each."""

    def probe(token: str) -> int:
        start = h.now_ns()
        tmux.send_poll(target, f"echo {token}", token, 0.0, WAIT_S)
        return h.now_ns() - start

    return probe


def tmux_control_probe(control: h.TmuxControl, target: str) -> Callable[[str], int]:
    """send-keys, then capture-pane back to back, over the control connection."""

    def probe(token: str) -> int:
        start = h.now_ns()
        control.command(f"send-keys -t {target} 'echo {token}' Enter")
        h.poll_until(
            lambda: True if token in control.command(f"capture-pane -p -t {target}") else None,
            WAIT_S,
            what=token,
        )
        return h.now_ns() - start

    return probe


def main() -> None:
    args = h.parse_args(__doc__ or "")
    runs, budget_s = (30, 20.0) if args.quick else (400, 150.0)
    with h.bench_run("roundtrip") as (stack, scratch):
        server = h.start_server(stack, scratch, "rt")
        hub = h.connect(stack, server.addr)
        tmux = h.start_tmux(stack, scratch, "roundtrip")

        awaits = {t: AwaitProbe(hub, f"await{t}", t) for t in AWAIT_TIMEOUTS_MS}
        for probe in awaits.values():
            h.create_shell(hub, probe.session)
        h.create_shell(hub, "visible")
        tmux.start_shell("cli")
        tmux.start_shell("ctl")
        control = h.attach_control(stack, tmux, "ctl")

        probes: dict[str, Callable[[str], int]] = {
            **{f"await{t}": awaits[t] for t in AWAIT_TIMEOUTS_MS},
            "visible": visible_probe(hub, "visible"),
            "cli": tmux_cli_probe(tmux, "cli"),
            "control": tmux_control_probe(control, "ctl"),
        }
        names = list(probes)
        for name in names:
            for _ in range(WARMUP_RUNS):
                probes[name](uuid.uuid4().hex[:12])
        for probe in awaits.values():
            probe.misses = 0

        samples: dict[str, list[int]] = {name: [] for name in names}
        for run in h.bounded(runs, budget_s):
            # Rotate who goes first so no variant always runs right after another.
            shift = run % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(probes[name](uuid.uuid4().hex[:12]))

    stats = {name: h.Stats.of(s) for name, s in samples.items()}
    cli, ctl = stats["cli"], stats["control"]
    rows = []
    for t in AWAIT_TIMEOUTS_MS:
        s = stats[f"await{t}"]
        target = TARGET_RATIO if t == AWAIT_TIMEOUTS_MS[0] else None
        rows += [
            h.ratio_row(
                f"median, AwaitIdle {t} ms vs tmux CLI", s.median, cli.median, "ms", target
            ),
            h.ratio_row(f"p99,    AwaitIdle {t} ms vs tmux CLI", s.p99, cli.p99, "ms", None),
        ]
    vis = stats["visible"]
    rows += [
        h.ratio_row(
            "median, visible (GetScreen) vs tmux CLI", vis.median, cli.median, "ms", TARGET_RATIO
        ),
        h.ratio_row("p99,    visible (GetScreen) vs tmux CLI", vis.p99, cli.p99, "ms", None),
        h.ratio_row("median, visible (GetScreen) vs tmux -C", vis.median, ctl.median, "ms", None),
        h.ratio_row("p99,    visible (GetScreen) vs tmux -C", vis.p99, ctl.p99, "ms", None),
    ]
    h.print_table(f"roundtrip: echo <token> until visible, {cli.n} runs each", rows, "tmux")
    for t, probe in awaits.items():
        print(
            f"AwaitIdle timeout_ms={t}: token missing from the first idle screen "
            f"in {probe.misses}/{stats[f'await{t}'].n} runs"
        )


if __name__ == "__main__":
    main()
