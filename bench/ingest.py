"""Ingest: how fast a burst of output gets from the program onto the screen.

Two bursts, each typed into a fresh 80x24 bash and timed from the keystroke
until its last line is on the screen:
  seq: ``seq 1 1000000`` until the line "1000000" shows;
  cat: ``cat`` of a 50 MB file of 1000-3000 random printable characters a
       line, then ``echo DONE_$((6*7))``, until "DONE_42" shows (the typed
       command itself never shows that line).

wsh is timed two ways, both reported: the agent loop (SendInput, then
AwaitIdle with last_generation and timeout_ms=20, again from the returned
generation while the last line is missing), which includes the 20 ms of
silence that ends it; and GetScreen every 10 ms. tmux: send-keys, then
capture-pane every 10 ms. Target: wsh at most 1.5x tmux's time on both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import _harness as h

from wsh.v1 import hub_pb2

AWAIT_TIMEOUT_MS = 20
POLL_S = 0.010
TARGET_RATIO = 1.5
WAIT_S = 120.0  # one burst's bound
MB = 1e6


@dataclass(frozen=True, slots=True)
class Burst:
    """A command that prints a lot, and the line that shows it is done."""

    label: str
    command: str
    last_line: str
    source_bytes: int


def seq_burst(count: int) -> Burst:
    """``seq 1 count``; its size counts the digits and newlines seq writes."""
    size = sum(len(str(i)) + 1 for i in range(1, count + 1))
    return Burst(f"seq 1 {count}", f"seq 1 {count}", str(count), size)


def cat_burst(size: int) -> Burst:
    """``cat`` of a file of about ``size`` bytes, then a marker line."""
    path = Path(f"/tmp/wsh-bench-ingest-{size // 1_000_000}MB.txt")
    actual = ensure_file(path, size)
    return Burst(f"cat {actual / MB:.0f} MB", f"cat {path}; echo DONE_$((6*7))", "DONE_42", actual)


def ensure_file(path: Path, size: int) -> int:
    """Write ``size`` bytes (rounded up to a line) of long printable lines once;
    later runs reuse the file. Returns its size."""
    if path.exists() and size <= path.stat().st_size < size + 3001:
        return path.stat().st_size
    rng = random.Random(20240601)
    # Every byte value maps onto one of the 95 printable ASCII characters.
    printable = bytes(0x20 + i % 95 for i in range(256))
    partial = path.with_suffix(".partial")
    written = 0
    with partial.open("wb") as out:
        while written < size:
            line = rng.randbytes(rng.randint(1000, 3000)).translate(printable) + b"\n"
            out.write(line)
            written += len(line)
    partial.replace(path)
    return written


class Side(Protocol):
    """One way of running a burst: a fresh shell, the burst, then cleanup."""

    def open(self, name: str) -> None: ...
    def burst(self, name: str, burst: Burst) -> None: ...
    def close(self, name: str) -> None: ...


class WshSide:
    """A wsh session, waited on with AwaitIdle ("await") or GetScreen polling."""

    def __init__(self, hub: h.HubStub, wait: str) -> None:
        self.hub = hub
        self.wait = wait

    def open(self, name: str) -> None:
        h.create_shell(self.hub, name)

    def burst(self, name: str, burst: Burst) -> None:
        data = f"{burst.command}\n".encode()
        if self.wait == "await":
            h.send_await(self.hub, name, data, burst.last_line, AWAIT_TIMEOUT_MS, WAIT_S)
        else:
            h.send_poll(self.hub, name, data, burst.last_line, POLL_S, WAIT_S)

    def close(self, name: str) -> None:
        self.hub.KillSession(hub_pb2.KillSessionRequest(name=name), timeout=h.RPC_TIMEOUT)


class TmuxSide:
    """A tmux session, waited on with capture-pane polling."""

    def __init__(self, tmux: h.Tmux) -> None:
        self.tmux = tmux

    def open(self, name: str) -> None:
        self.tmux.start_shell(name)

    def burst(self, name: str, burst: Burst) -> None:
        self.tmux.send_poll(name, burst.command, burst.last_line, POLL_S, WAIT_S)

    def close(self, name: str) -> None:
        self.tmux("kill-session", "-t", name)


def time_burst(side: Side, name: str, burst: Burst) -> int:
    """Nanoseconds from typing the burst's command to its last line on screen,
    in a shell of its own so no earlier output is on screen or in history."""
    side.open(name)
    try:
        start = h.now_ns()
        side.burst(name, burst)
        return h.now_ns() - start
    finally:
        side.close(name)


def main() -> None:
    args = h.parse_args(__doc__ or "")
    runs = 1 if args.quick else 5
    if args.quick:
        bursts = [seq_burst(100_000), cat_burst(5_000_000)]
    else:
        bursts = [seq_burst(1_000_000), cat_burst(50_000_000)]
    times: dict[tuple[str, str], list[int]] = {}
    with h.bench_run("ingest") as (stack, scratch):
        server = h.start_server(stack, scratch, "ingest")
        hub = h.connect(stack, server.addr)
        sides: dict[str, Side] = {
            "wsh await": WshSide(hub, "await"),
            "wsh poll": WshSide(hub, "poll"),
            "tmux": TmuxSide(h.start_tmux(stack, scratch, "ingest")),
        }
        names = list(sides)
        for run in range(runs):
            for burst in bursts:
                # Rotate the order so no side always follows the same one.
                for side in names[run % 3 :] + names[: run % 3]:
                    elapsed = time_burst(sides[side], f"r{run}-{side.replace(' ', '-')}", burst)
                    times.setdefault((burst.label, side), []).append(elapsed)
                    print(f"  run {run + 1}: {burst.label}, {side}: {elapsed / 1e9:.2f} s")

    rows = []
    for burst in bursts:
        tmux_s = h.Stats.of(times[(burst.label, "tmux")]).median / 1000
        for side, how in (("wsh await", f"AwaitIdle {AWAIT_TIMEOUT_MS} ms"), ("wsh poll", "poll")):
            wsh_s = h.Stats.of(times[(burst.label, side)]).median / 1000
            rows += [
                h.ratio_row(f"{burst.label}, {how}: time", wsh_s, tmux_s, "s", TARGET_RATIO),
                h.rate_row(
                    f"{burst.label}, {how}: rate",
                    burst.source_bytes / MB / wsh_s,
                    burst.source_bytes / MB / tmux_s,
                    "MB/s",
                    None,
                ),
            ]
    h.print_table(f"ingest: burst until its last line shows, median of {runs} runs", rows, "tmux")


if __name__ == "__main__":
    main()
