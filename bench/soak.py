"""Soak: a hub and two backends under a long, mixed load, checked for failures and leaks.

Phase 1: create/kill cycles spread over the three servers (through the hub,
``server=`` each). Phase 2: many bash sessions alive at once, each made to
echo a line. Phase 3: many concurrent clients, each looping on its own
session: SendInput ``echo <unique>``, AwaitIdle from the input's generation,
check the line is on the idle screen, GetScreen. Every server's
``GetServerInfo`` stats are sampled after a warm-up and after each phase,
once everything is killed and has settled.

Passes with zero failed calls, zero wrong screens, descriptors, child
processes and tasks back at their baseline, and no RSS growth over the
second half of the cycles. Reports memory per session, phase-3 throughput
and latency percentiles. ``tests/e2e/test_soak.py`` runs the same driver
(``tests/soak_driver.py``) in a short form in CI.

    python bench/soak.py [--cycles 1000 --sessions 200 --clients 50 --seconds 60] [--record]

``--record`` appends the command, the date and the output to bench/SOAK.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import _harness as h

from tests.soak_driver import SoakConfig, run_soak

RECORD = Path(__file__).with_name("SOAK.md")
RECORD_HEADER = """# Soak results

Full runs of `python bench/soak.py` (driver: `tests/soak_driver.py`; the short
CI form is `tests/e2e/test_soak.py`). Newest last; each entry is the command, the
date and the machine (load average at the start), then the run's own output.

Growth is the last settled sample minus the baseline taken after a warm-up.
RSS does not fall back to the baseline once sessions are killed, since freed
screens stay in Python's allocator arenas; the leak checks are descriptors,
child processes and tasks back at the baseline, no RSS growth over the second
half of the create/kill cycles, and a 32 MiB backstop over the whole run.
"""


def parse_args() -> argparse.Namespace:
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=defaults.cycles)
    parser.add_argument("--sessions", type=int, default=defaults.sessions)
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.cycle_workers,
        help="concurrent create/kill workers in phase 1 (default %(default)s)",
    )
    parser.add_argument(
        "--idle-ms",
        type=int,
        default=defaults.idle_ms,
        help="AwaitIdle timeout_ms in the phase-3 loop (default %(default)s)",
    )
    parser.add_argument("--record", action="store_true", help=f"append the output to {RECORD}")
    return parser.parse_args()


def record(command: str, machine: str, output: str) -> None:
    """Append one run to SOAK.md, starting the file when it is new."""
    text = RECORD.read_text() if RECORD.exists() else RECORD_HEADER
    now = datetime.datetime.now().astimezone()
    text += (
        f"\n## {now:%Y-%m-%d %H:%M %Z}\n\n"
        f"Command: `{command}`\n\nMachine: {machine}\n\n```\n{output}\n```\n"
    )
    RECORD.write_text(text)
    print(f"recorded in {RECORD}")


def main() -> int:
    args = parse_args()
    config = SoakConfig(
        cycles=args.cycles,
        sessions=args.sessions,
        clients=args.clients,
        seconds=args.seconds,
        cycle_workers=args.workers,
        idle_ms=args.idle_ms,
    )
    # Taken before the run: the load average then says what else was running.
    machine = h.machine_summary()
    with h.bench_run("soak") as (_stack, scratch):
        report = run_soak(config, scratch)
    output = report.summary()
    print(output, flush=True)
    if args.record:
        command = " ".join(["python", "bench/soak.py", *sys.argv[1:]])
        record(command, machine, output)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
