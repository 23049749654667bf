"""Terminal emulator throughput: wsh's TerminalScreen (pyavt) against pyte.

Run from the repository root: ``python bench/emulator.py`` (about 30 s;
``--quick``: a few seconds).

Every engine gets the same bytes, in 4 KiB chunks (what a PTY read returns
while a program floods it), on an 80x24 screen with 10,000 lines of history
where it keeps any. pyte is far slower, so it is fed for a fixed time and its
rate taken from what it got through. Then the cost of reading a 200x50 screen
full of colour, plain and styled.
"""

from __future__ import annotations

import json
import os
import random
import string
import time
from collections.abc import Callable
from pathlib import Path

import _harness as h
import pyte
from avt._avt import Vt

from wsh.terminal.screen import TerminalScreen

ROWS, COLS, HISTORY = 24, 80, 10_000
CHUNK = 4096
QUICK = False  # set from --quick: smaller payloads, shorter timings
# Real programs' output, recorded by scripts/record-fixtures for the tests.
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "terminal" / "fixtures"

# An engine takes the chunks of one payload and returns how many bytes it got
# through before its deadline (all of them, for the fast ones).
Engine = Callable[[list[bytes], float], int]


def wsh_screen(chunks: list[bytes], deadline: float) -> int:
    screen = TerminalScreen(ROWS, COLS, HISTORY)
    for chunk in chunks:
        screen.feed(chunk)
    # Reading history turns the lines still waiting into text: count that too.
    screen.scrollback(0, 1, styled=False)
    return sum(map(len, chunks))


def pyavt_alone(chunks: list[bytes], deadline: float) -> int:
    """The engine's ceiling: no decoding checks, history or alternate screen."""
    vt = Vt(COLS, ROWS, scrollback_limit=0)
    for chunk in chunks:
        vt.feed_str(chunk.decode("utf-8", "replace"))
    return sum(map(len, chunks))


def _pyte(screen: pyte.Screen, chunks: list[bytes], deadline: float) -> int:
    stream = pyte.ByteStream(screen)
    done = 0
    for chunk in chunks:
        stream.feed(chunk)
        done += len(chunk)
        if time.perf_counter() > deadline:
            break
    return done


class _PrivateSgr(pyte.Screen):
    """pyte 0.8.2 raises TypeError on a private SGR (vim's ``ESC [>4;2m``, key
    modifiers); a terminal ignores what it does not know, so do that."""

    def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
        if not private:
            super().select_graphic_rendition(*attrs)


class _PyteHistory(_PrivateSgr, pyte.HistoryScreen):
    pass


def pyte_history(chunks: list[bytes], deadline: float) -> int:
    return _pyte(_PyteHistory(COLS, ROWS, history=HISTORY), chunks, deadline)


def pyte_screen(chunks: list[bytes], deadline: float) -> int:
    return _pyte(_PrivateSgr(COLS, ROWS), chunks, deadline)


ENGINES: list[tuple[str, Engine, bool]] = [  # name, engine, slow (fed for a fixed time)
    ("wsh TerminalScreen", wsh_screen, False),
    ("pyavt Vt alone", pyavt_alone, False),
    ("pyte HistoryScreen", pyte_history, True),
    ("pyte Screen", pyte_screen, True),
]


def in_chunks(data: bytes) -> list[bytes]:
    return [data[at : at + CHUNK] for at in range(0, len(data), CHUNK)]


def payloads() -> list[tuple[str, bytes]]:
    count, total = (20_000, 500_000) if QUICK else (200_000, 5_000_000)
    seq = b"".join(b"%d\r\n" % n for n in range(1, count + 1))
    rng = random.Random(1)
    printable = (string.ascii_letters + string.digits + string.punctuation + " ").encode()
    lines = []
    size = 0
    while size < total:
        line = bytes(rng.choices(printable, k=rng.randint(200, 4000))) + b"\r\n"
        lines.append(line)
        size += len(line)
    found = [(f"seq 1..{count}", seq), (f"{total / 1e6:g} MB of long lines", b"".join(lines))]
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    for name, fixture in sorted(manifest.items()):
        # Only those recorded at the benchmark's size: the others would draw a
        # different screen than the program did.
        if (fixture["rows"], fixture["cols"]) == (ROWS, COLS):
            found.append((f"recorded {name}", (FIXTURES / fixture["file"]).read_bytes()))
    return found


def rate(engine: Engine, data: bytes, slow: bool) -> float:
    """MB/s: best of three runs for fast engines; one timed run for slow ones.

    Small payloads are fed again and again to a fresh screen until a run
    lasts long enough to time.
    """
    chunks = in_chunks(data)
    budget = (0.3 if QUICK else 2.0) if slow else 0.2
    if slow and not QUICK and len(data) < 1_000_000:
        budget = 1.0  # the recorded programs
    best = 0.0
    for _ in range(1 if slow else 3):
        start = time.perf_counter()
        deadline = start + budget
        done = 0
        while True:
            done += engine(chunks, deadline)
            if time.perf_counter() >= deadline or (not slow and done >= 1_000_000):
                break
        best = max(best, done / (time.perf_counter() - start) / 1e6)
    return best


PALETTE = [f"{a};{c}" for a in ("0", "1", "4", "7") for c in ("31", "32", "94", "43")]
PALETTE += [f"0;38;5;{n}" for n in (21, 130, 208, 250)]
PALETTE += ["0;38;2;255;128;0", "0;1;38;2;20;200;90;48;2;30;30;30", "0", "0;2;3"]


def coloured_row(rng: random.Random, row: int, widest: int, fresh_pens: bool) -> str:
    """Row ``row`` (1-based) of a 200-column screen, all in coloured runs of
    2 to ``widest`` characters; pens from a palette of 24, or each a new one."""
    runs = [f"\x1b[{row};1H"]
    col = 0
    while col < 200:
        width = min(rng.randint(2, widest), 200 - col)
        if fresh_pens:
            pen = "0;38;2;{};{};{};48;2;{};{};{}".format(*(rng.randint(0, 255) for _ in range(6)))
        else:
            pen = rng.choice(PALETTE)
        runs.append(f"\x1b[{pen}m{''.join(rng.choices(string.ascii_letters + ' ', k=width))}")
        col += width
    return "".join(runs) + "\x1b[0m"


def coloured_screen(rng: random.Random, widest: int, fresh_pens: bool = False) -> bytes:
    return "".join(coloured_row(rng, row, widest, fresh_pens) for row in range(1, 51)).encode()


def time_views() -> list[tuple[str, float, float]]:
    """Median and best time of each kind of read, in ms."""
    rng = random.Random(2)
    screen = TerminalScreen(50, 200, HISTORY)
    results = []

    def timed(label: str, prepare: Callable[[], None], read: Callable[[], object]) -> None:
        spent = []
        for _ in range(10 if QUICK else 40):
            prepare()
            start = time.perf_counter()
            read()
            spent.append(time.perf_counter() - start)
        spent.sort()
        results.append((label, spent[len(spent) // 2] * 1e3, spent[0] * 1e3))

    def new_screen(widest: int, fresh_pens: bool = False) -> Callable[[], None]:
        return lambda: screen.feed(coloured_screen(rng, widest, fresh_pens))

    def spans_a_row(widest: int) -> int:
        screen.feed(coloured_screen(rng, widest))
        return sum(map(len, screen.view(True).styled_lines or ())) // 50

    def redraw() -> None:
        screen.feed(same)

    def scroll() -> None:
        screen.feed(f"\x1b[50;1H\n{coloured_row(rng, 50, 30, False)}".encode())

    def one_row() -> None:
        screen.feed(f"\x1b[25;1H\x1b[31m{rng.random():.12f}".encode())

    def plain() -> object:
        return screen.view(False)

    def styled() -> object:
        return screen.view(True)

    dense, typical = spans_a_row(16), spans_a_row(30)
    timed("view(plain), every row new", new_screen(30), plain)
    timed(f"view(styled), every row new, ~{typical} spans a row", new_screen(30), styled)
    timed(f"view(styled), every row new, ~{dense} spans a row", new_screen(16), styled)
    timed(
        f"view(styled), every row new, ~{dense} spans a row, each a new truecolour pen",
        new_screen(16, fresh_pens=True),
        styled,
    )
    same = coloured_screen(rng, 30)
    screen.feed(same)
    timed("view(styled), screen redrawn unchanged", redraw, styled)
    timed("view(styled), scrolled up one row", scroll, styled)
    timed("view(styled), one row changed", one_row, styled)
    timed("view(styled), no change (cached)", lambda: None, styled)

    pyte_plain = pyte.Screen(200, 50)
    stream = pyte.ByteStream(pyte_plain)
    timed(
        "pyte Screen.display, every row new",
        lambda: stream.feed(coloured_screen(rng, 30)),
        lambda: pyte_plain.display,
    )
    return results


def main() -> None:
    global QUICK
    QUICK = h.parse_args(__doc__.splitlines()[0] if __doc__ else "").quick
    started = time.perf_counter()
    print(h.machine_summary())
    print()
    print(f"Feeding: {ROWS}x{COLS}, {HISTORY} lines of history, {CHUNK}-byte chunks; MB/s")
    print()
    names = [name for name, _, _ in ENGINES]
    print(f"| payload | size | {' | '.join(names)} | wsh / pyte History | wsh / pyte Screen |")
    print(f"|---|---:|{'---:|' * len(names)}---:|---:|")
    for label, data in payloads():
        rates = [rate(engine, data, slow) for _, engine, slow in ENGINES]
        cells = " | ".join(f"{r:.2f}" for r in rates)
        ratios = f"{rates[0] / rates[2]:.0f}x | {rates[0] / rates[3]:.0f}x"
        print(f"| {label} | {len(data) / 1e6:.2f} MB | {cells} | {ratios} |")
    print()
    print("Reading a 200x50 screen full of colour, ms:")
    print()
    print("| read | median | best |")
    print("|---|---:|---:|")
    for label, median, best in time_views():
        print(f"| {label} | {median:.3f} | {best:.3f} |")
    print()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"total {time.perf_counter() - started:.0f} s; load average at the end {load}")


if __name__ == "__main__":
    main()
