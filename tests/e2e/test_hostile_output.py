"""A session's output can never stall the server nor bloat it (issue 15, items 1 and 2).

Unit tests pin the clamping and budget logic against pyavt itself; the
end-to-end tests replay small versions of the attacks of ``bench/hostile.py``
against a real server while another client calls GetServerInfo.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from avt._avt import Vt

from tests.procs import ServerProc, assert_no_traceback, stub
from wsh import defaults
from wsh.terminal import screen as screen_mod
from wsh.terminal.screen import TerminalScreen
from wsh.terminal.sequences import clamp_repeat, repeat_count
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

MARKER = "~"
RPC_TIMEOUT = 30.0


def colored_cells(count: int) -> bytes:
    """``count`` cells, each with its own 24-bit colours."""
    return "".join(
        f"\x1b[38;2;{i % 256};{i // 256 % 256};7;48;2;9;{i % 251};{i % 241}m{chr(65 + i % 26)}"
        for i in range(count)
    ).encode()


def vt_state(rows: int, cols: int, output: str) -> tuple[list[str], tuple[int, int]]:
    vt = Vt(cols, rows, scrollback_limit=0)
    vt.feed_str(output)
    return [str(line) for line in vt.view()], (vt.cursor.row, vt.cursor.col)


def screen_state(screen: TerminalScreen) -> tuple[tuple[str, ...], tuple[int, int]]:
    view = screen.view(styled=False)
    return view.lines, (view.cursor.row, view.cursor.col)


# -- REP: a count bounded by what can show -----------------------------------


def test_clamped_repeat_leaves_the_same_screen_in_pyavt() -> None:
    """Random screens, modes, margins and characters: REP n and REP clamp(n)
    leave the same cells and cursor."""
    rng = random.Random(15)
    setups = ["", "\x1b[?7l", "\x1b[2;3r", "\x1b[5;5H", "\x1b[4h", "xy\r\n", "\x1b[31m",
              "\x1b[2;4r\x1b[3;1H", "\x1b[?6h\x1b[2;3r"]  # fmt: skip
    for _ in range(1500):
        rows, cols = rng.randint(1, 6), rng.randint(1, 9)
        # pyavt panics on a wide character in a single column.
        char = rng.choice(["A", "\u4e00", "e\u0301"] if cols > 1 else ["A", "e\u0301"])
        before = rng.choice(setups) + rng.choice(["", "\x1b[2;2H", "zz"]) + char
        count = rng.randint(1, 3000)
        clamped = clamp_repeat(count, rows, cols)
        assert clamped <= count
        assert vt_state(rows, cols, f"{before}\x1b[{count}b") == vt_state(
            rows, cols, f"{before}\x1b[{clamped}b"
        ), (rows, cols, before, count, clamped)


def test_clamp_bounds_the_count_by_the_screen() -> None:
    assert clamp_repeat(65535, 1, 1) <= 3
    assert clamp_repeat(65535, 24, 80) <= 25 * 80 + 2 * 80
    assert clamp_repeat(100, 24, 80) == 100


@pytest.mark.parametrize(
    ("params", "count"),
    [("5", 5), ("", 1), ("0", 1), ("5;7", 5), ("5:7", 5), (";5", 1), ("65541", 5),
     ("0" * 30 + "7", 7), ("6\n5", 65), ("?5", None), (">5", None), ("5 ", None)],
)  # fmt: skip
def test_repeat_count_reads_parameters_as_pyavt_does(params: str, count: int | None) -> None:
    assert repeat_count(params) == count
    if "\n" not in params:
        lines, _ = vt_state(2, 100, f"A\x1b[{params}b")
        assert "".join(lines).count("A") == 1 + (count or 0)


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7])
def test_screen_with_clamping_matches_pyavt_split_anywhere(split: int) -> None:
    """Output with huge REPs (C0 controls inside, C1 CSI, over-long
    parameters) fed in pieces of ``split`` bytes shows what pyavt shows for it
    in one piece."""
    output = (
        "\x1b[31mA\x1b[65535bB\x1b[3;4HC\x9b40000b\x1b[1\n0000bD\x1b["
        + "0" * 600
        + "65000b\x1b[?5bE\x1b[7;1HF\x1b[200b"
    )
    for rows, cols in [(1, 1), (3, 7), (24, 80)]:
        screen = TerminalScreen(rows, cols)
        data = output.encode()
        for at in range(0, len(data), split):
            screen.feed(data[at : at + split])
        vt = Vt(cols, rows, scrollback_limit=0)
        vt.feed_str(output)
        expected = tuple(line.text.rstrip() for line in vt.view())
        cursor = vt.cursor
        assert screen_state(screen) == (expected, (cursor.row, min(cursor.col, cols - 1)))


# -- bounded work per step -----------------------------------------------------


def test_advance_past_its_deadline_does_one_bounded_chunk() -> None:
    screen = TerminalScreen(24, 80)
    screen.write(b"A\x1b[65535b" * 7000)
    steps = 0
    while not screen.advance(0.0):  # a deadline long gone: one chunk per call
        steps += 1
        assert steps < 10_000
    # 7000 REPs of 2,095 cells each once clamped, at most _CHUNK_CELLS a chunk.
    assert steps >= 7000 * clamp_repeat(65535, 24, 80) // screen_mod._CHUNK_CELLS
    assert screen.view(styled=False).lines[0] == "A" * 80


def test_costly_sequences_are_one_per_chunk_on_a_huge_screen() -> None:
    screen = TerminalScreen(1000, 1000)
    screen.write(b"\x1b#8" * 40)
    steps = 0
    while not screen.advance(0.0):
        steps += 1
    assert steps == 39  # the last chunk ends the backlog and returns True
    assert screen.view(styled=False).lines[999] == "E" * 1000


def test_an_unfinished_sequence_waits_for_its_end() -> None:
    screen = TerminalScreen(2, 10)
    screen.write(b"ab\x1b[3")
    assert not screen.advance(0.0)  # "ab", one chunk
    assert screen.advance(0.0)  # then only the start of a sequence is left
    assert not screen.backlog
    assert screen.view(styled=False).lines[0] == "ab"
    screen.write(b"1mc")
    assert screen.advance(0.0)
    view = screen.view(styled=True)
    assert view.lines[0] == "abc"
    assert view.styled_lines is not None
    assert view.styled_lines[0][-1].fg is not None


def test_wide_character_on_one_column_does_not_break_the_screen() -> None:
    """pyavt panics printing a wide character in one column; the screen goes on."""
    screen = TerminalScreen(3, 1)
    screen.feed("a\u4e00b\x1b[?7l\x1b[2P\x1b[4h\u4e00".encode())
    screen.feed(b"\x1bcx")
    assert screen.view(styled=False).lines == ("x", "", "")


# -- history and rendering budgets ---------------------------------------------


def test_history_stays_within_its_byte_budget() -> None:
    screen = TerminalScreen(5, 200, scrollback_limit=10_000, scrollback_bytes=200_000)
    line = colored_cells(200) + b"\r\n"
    for i in range(400):
        screen.feed(line + b"%d\r\n" % i)
    assert screen.history_bytes <= 200_000
    page = screen.scrollback(0, 10_000, styled=False)
    assert page.total_lines < 800  # the oldest went first
    assert "399" in page.lines  # the newest stayed


def test_scrollback_page_stops_at_its_budget_and_pages_on() -> None:
    screen = TerminalScreen(3, 1000)
    for _ in range(60):
        screen.feed(colored_cells(1000) + b"\r\n")
    first = screen.scrollback(0, 1000, styled=True)
    # A line renders to about 40 characters a cell.
    assert 1 <= len(first.lines) <= defaults.STYLED_RENDER_CHARS // 30_000 + 1
    assert first.styled_lines is not None and len(first.styled_lines) == len(first.lines)
    assert first.truncated
    offset, pages = 0, 0
    while offset < first.total_lines:
        page = screen.scrollback(offset, 1000, styled=True)
        assert page.lines
        offset += len(page.lines)
        pages += 1
        assert pages <= first.total_lines
    assert offset == first.total_lines
    # Plain pages of such lines are not held back by their styles.
    plain = screen.scrollback(0, 1000, styled=False)
    assert len(plain.lines) == first.total_lines and not plain.truncated


def test_styled_screen_over_budget_draws_the_rest_plain() -> None:
    screen = TerminalScreen(200, 1000)
    screen.feed(b"\x1b[H" + colored_cells(200 * 1000 - 1))
    view = screen.view(styled=True)
    assert screen.styles_degraded and view.styles_truncated
    assert view.styled_lines is not None
    plain_rows = [line for line in view.styled_lines if len(line) == 1 and line[0].fg is None]
    assert 0 < len(plain_rows) < 200
    assert view.lines == screen.view(styled=False).lines
    assert all(line[0].fg is not None for line in view.styled_lines[:2])


def test_well_behaved_styled_screen_is_not_degraded() -> None:
    screen = TerminalScreen(50, 200)
    screen.feed(b"".join(b"\x1b[3%dmword%d \x1b[0m" % (i % 8, i) for i in range(2000)))
    view = screen.view(styled=True)
    assert not screen.styles_degraded and not view.styles_truncated
    assert view.styled_lines is not None
    assert any(span.fg is not None for line in view.styled_lines for span in line)


# -- end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("hostile")
    proc = ServerProc(
        "hostile",
        "--config",
        str(tmp / "wsh.toml"),
        "--scrollback-bytes",
        str(2 * 1024 * 1024),
        log_path=tmp / "server.log",
    )
    with proc:
        yield proc


@pytest.fixture(scope="module")
def hub(server: ServerProc) -> Iterator[hub_pb2_grpc.HubServiceStub]:
    channel, hub_stub = stub(server.addr)
    with channel:
        yield hub_stub


class Prober:
    """GetServerInfo every 10 ms on a channel of its own, in a thread."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.worst = 0.0
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def _run(self) -> None:
        channel, hub_stub = stub(self.addr)
        with channel:
            while not self._stop.is_set():
                start = time.monotonic()
                hub_stub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
                self.worst = max(self.worst, time.monotonic() - start)
                self.calls += 1
                self._stop.wait(0.01)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(RPC_TIMEOUT + 5)


def play(
    hub: hub_pb2_grpc.HubServiceStub,
    tmp_path: Path,
    name: str,
    rows: int,
    cols: int,
    payload: bytes,
    then: str = "",
) -> None:
    """``cat`` the payload in a new session, then reset and print the marker;
    return once the marker shows."""
    path = tmp_path / f"{name}.bin"
    path.write_bytes(payload)
    hub.CreateSession(
        hub_pb2.CreateSessionRequest(
            name=name,
            command=f"cat {path}; {then} printf '\\033c{MARKER}'; exec sleep 60",
            rows=rows,
            cols=cols,
        ),
        timeout=RPC_TIMEOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        screen = hub.GetScreen(hub_pb2.GetScreenRequest(name=name), timeout=RPC_TIMEOUT).screen
        if screen.lines and screen.lines[0] == MARKER:
            return
        time.sleep(0.1)
    raise AssertionError(f"the marker never showed on {name}")


def test_repeat_flood_does_not_stall_other_clients(
    hub: hub_pb2_grpc.HubServiceStub, server: ServerProc, tmp_path: Path
) -> None:
    """16 KiB of ``A ESC[65535b`` on a 24x80 session held the loop for
    seconds (64 KiB: 7.9 s, 780 MB)."""
    with Prober(server.addr) as prober:
        play(hub, tmp_path, "rep", 24, 80, b"A\x1b[65535b" * (16384 // 9))
    assert prober.calls > 0
    assert prober.worst < 0.5, f"GetServerInfo waited {prober.worst:.2f}s"


def test_floods_in_several_sessions_share_one_budget(
    hub: hub_pb2_grpc.HubServiceStub, server: ServerProc, tmp_path: Path
) -> None:
    """Four sessions with 8 KiB of REP each, at once: each session's turn is
    bounded, and so are all the turns together."""
    with Prober(server.addr) as prober:
        threads = [
            threading.Thread(
                target=play,
                args=(hub, tmp_path, f"many{i}", 24, 80, b"A\x1b[65535b" * (8192 // 9)),
            )
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    for i in range(4):
        lines = hub.GetScreen(hub_pb2.GetScreenRequest(name=f"many{i}"), timeout=RPC_TIMEOUT)
        assert lines.screen.lines[0] == MARKER
    assert prober.worst < 0.5, f"GetServerInfo waited {prober.worst:.2f}s"


def test_decaln_on_a_big_screen_does_not_stall_other_clients(
    hub: hub_pb2_grpc.HubServiceStub, server: ServerProc, tmp_path: Path
) -> None:
    """ESC#8 fills every cell: 1 KiB of it on 1000x1000 took 3.5 s in one go."""
    with Prober(server.addr) as prober:
        play(hub, tmp_path, "decaln", 1000, 1000, b"\x1b#8" * 341)
    assert prober.worst < 0.5, f"GetServerInfo waited {prober.worst:.2f}s"


def test_idle_waits_for_the_whole_backlog(
    hub: hub_pb2_grpc.HubServiceStub, server: ServerProc, tmp_path: Path
) -> None:
    """Output emulated in turns, with rests between them, is not idle until
    its end is on screen, even with a timeout shorter than a rest."""
    path = tmp_path / "decaln.bin"
    path.write_bytes(b"\x1b#8" * 300)
    hub.CreateSession(
        hub_pb2.CreateSessionRequest(
            name="backlog",
            command=f"cat {path}; printf '\\033c{MARKER}'; exec sleep 60",
            rows=1000,
            cols=1000,
        ),
        timeout=RPC_TIMEOUT,
    )
    request = hub_pb2.AwaitIdleRequest(name="backlog", timeout_ms=5, max_wait_ms=60_000)
    request.last_generation = 0
    idle = hub.AwaitIdle(request, timeout=90).idle
    for _ in range(50):
        if idle.screen.lines[0]:
            break
        # Settled before cat had written anything: wait for the output.
        request.last_generation = idle.generation
        idle = hub.AwaitIdle(request, timeout=90).idle
    assert idle.screen.lines[0] == MARKER, idle.screen.lines[0][:20]


def test_colourful_history_pages_fit_the_message_limit(
    hub: hub_pb2_grpc.HubServiceStub, server: ServerProc, tmp_path: Path
) -> None:
    """600 lines of 1000 cells with colours of their own: a styled page of
    1000 lines was 19 MB, over gRPC's 16 MiB; history is held to the
    server's --scrollback-bytes (2 MiB here), and pages stop early."""
    line = tmp_path / "line.bin"
    line.write_bytes(colored_cells(1000) + b"\r\n")
    loop = f"i=0; while [ $i -lt 600 ]; do cat {line}; i=$((i+1)); done;"
    play(hub, tmp_path, "history", 24, 1000, b"", then=loop)
    request = hub_pb2.GetScrollbackRequest(
        name="history", limit=1000, format=types_pb2.SCREEN_FORMAT_STYLED
    )
    first = hub.GetScrollback(request, timeout=RPC_TIMEOUT)
    assert 1 <= len(first.lines) < first.total_lines and first.truncated
    assert first.total_lines < 600  # the byte budget dropped the oldest lines
    offset = 0
    for _ in range(first.total_lines):
        request.offset = offset
        page = hub.GetScrollback(request, timeout=RPC_TIMEOUT)
        assert page.lines and len(page.styled_lines) == len(page.lines)
        offset += len(page.lines)
        if offset >= page.total_lines:
            break
    assert offset == first.total_lines
    info = hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
    assert info.stats.rss_bytes < 400 * 1024 * 1024


def test_styled_screen_of_a_colourful_big_session_answers(
    hub: hub_pb2_grpc.HubServiceStub, server: ServerProc, tmp_path: Path
) -> None:
    """A 200x1000 screen with colours per cell: styled GetScreen took 2.65 s
    with the loop held; now the rows over the budget come plain."""
    path = tmp_path / "cells.bin"
    path.write_bytes(b"\x1b[H" + colored_cells(200 * 1000 - 1))
    hub.CreateSession(
        hub_pb2.CreateSessionRequest(
            name="styled", command=f"cat {path}; exec sleep 60", rows=200, cols=1000
        ),
        timeout=RPC_TIMEOUT,
    )
    idle = hub.AwaitIdle(
        hub_pb2.AwaitIdleRequest(name="styled", timeout_ms=500, max_wait_ms=60_000),
        timeout=90,
    ).idle
    assert idle.screen.lines[199]
    with Prober(server.addr) as prober:
        screen = hub.GetScreen(
            hub_pb2.GetScreenRequest(name="styled", format=types_pb2.SCREEN_FORMAT_STYLED),
            timeout=RPC_TIMEOUT,
        ).screen
    assert len(screen.styled_lines) == 200
    assert screen.styled_lines[0].spans[0].HasField("fg")
    assert not screen.styled_lines[199].spans[0].HasField("fg")  # over the budget: plain
    assert screen.styles_truncated
    assert screen.lines[199] == idle.screen.lines[199]
    assert prober.worst < 0.5, f"GetServerInfo waited {prober.worst:.2f}s"


def test_no_traceback_in_the_log(server: ServerProc) -> None:
    assert server.log_path is not None
    assert_no_traceback(server.log_path.read_text(errors="replace"))
