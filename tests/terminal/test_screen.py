"""The terminal screen: real programs' screens, chunking, the alternate screen,
history, styles, wide characters, resize, the cursor and view caching."""

from __future__ import annotations

import codecs
import hashlib
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from avt._avt import Color as AvtColor
from avt._avt import Line, Vt
from avt._avt.parser import Parser
from avt._avt.terminal import BufferType, Terminal

from tests.tmux import TmuxScreen, TmuxServer
from wsh.terminal import screen as screen_mod
from wsh.terminal import styled as styled_mod
from wsh.terminal.screen import (
    Color,
    Cursor,
    ScreenView,
    Span,
    StyledLine,
    TerminalScreen,
)
from wsh.terminal.sequences import SequenceTracker

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST: dict[str, dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text())
PROGRAMS = sorted(MANIFEST)
# Every screen compared with tmux's: (fixture, how many of its bytes are fed).
SCREENS = [
    (name, offset)
    for name in PROGRAMS
    for offset in [*MANIFEST[name]["checks"], MANIFEST[name]["size"]]
]

RED = Color(indexed=1)


def recorded(name: str) -> bytes:
    """A fixture's bytes, as scripts/record-fixtures saved them."""
    data = (FIXTURES / str(MANIFEST[name]["file"])).read_bytes()
    assert hashlib.sha256(data).hexdigest() == MANIFEST[name]["sha256"], f"{name} changed"
    return data


def fed(
    *chunks: bytes | str, rows: int = 24, cols: int = 80, limit: int = 10_000
) -> TerminalScreen:
    screen = TerminalScreen(rows, cols, limit)
    for chunk in chunks:
        screen.feed(chunk.encode() if isinstance(chunk, str) else chunk)
    return screen


def random_chunks(data: bytes, rng: random.Random, biggest: int = 64) -> list[bytes]:
    chunks = []
    at = 0
    while at < len(data):
        size = rng.randint(1, biggest)
        chunks.append(data[at : at + size])
        at += size
    return chunks


def texts(line: StyledLine) -> str:
    return "".join(span.text for span in line)


def every_line(
    screen: TerminalScreen, styled: bool
) -> tuple[tuple[str, ...], tuple[StyledLine, ...]]:
    page = screen.scrollback(0, screen.view(False).total_lines, styled)
    return page.lines, page.styled_lines or ()


# --- real programs, checked against tmux -----------------------------------------
#
# tests/terminal/fixtures holds real programs' output, recorded on a PTY by
# scripts/record-fixtures (manifest.json says how). Each screen is compared
# with the one tmux, an independent emulator, makes of the same bytes: the
# text, the styles, the cursor and which screen is shown.

# Differences that are tmux's choice, not a bug of ours; each is allowed only
# for the fixtures listed and only where it applies.
PENDING_WRAP = "pending wrap"
ERASED_TAIL = "erased tail"
TMUX_CHOICES: dict[str, dict[str, str]] = {
    "top": {
        PENDING_WRAP: "top fills its last row, all 100 columns; while the wrap is pending "
        "tmux reports the cursor at column 100, one past the end, where we report the "
        "last column, 99, on purpose",
    },
    "colours": {
        ERASED_TAIL: "ESC [44m ESC [K paints the rest of a row blue; capture-pane leaves "
        "out cells that were only erased, whatever their background",
    },
    "htop": {
        ERASED_TAIL: "htop ends its column header and function-key rows with ESC [K under a "
        "coloured background; capture-pane leaves out cells that were only erased",
    },
}
# Our own bugs, found by the comparison: (fixture, check) -> what is wrong. They
# are expected to fail, strictly, so that a fix shows up here.
WSH_BUGS: dict[tuple[str, str], str] = {
    (name, check): "pyavt gives combining characters (U+0301...), zero-width spaces, "
    "variation selectors and ZWJ a cell of their own, so text after them sits one "
    "column per such character too far right"
    for name in ["combining"]
    for check in ["text", "styles"]
}


def screens(check: str) -> list[Any]:
    """SCREENS as test parameters, with the known bugs of ``check`` marked."""
    return [
        pytest.param(
            name,
            offset,
            id=f"{name}@{offset}",
            marks=[pytest.mark.xfail(strict=True, reason=WSH_BUGS[name, check])]
            if (name, check) in WSH_BUGS
            else [],
        )
        for name, offset in SCREENS
    ]


@pytest.fixture(scope="module")
def tmux_screens() -> dict[tuple[str, int], TmuxScreen]:
    """tmux's screen for every entry of SCREENS, fed all at once, then the server killed."""
    assert shutil.which("tmux"), "tmux is needed: scripts/setup installs it"
    with TmuxServer() as server:
        for name, offset in SCREENS:
            size = MANIFEST[name]
            server.start(f"{name}-{offset}", recorded(name)[:offset], size["rows"], size["cols"])
        return {(name, offset): server.screen(f"{name}-{offset}") for name, offset in SCREENS}


def fixture_screen(name: str, offset: int) -> TerminalScreen:
    size = MANIFEST[name]
    return fed(recorded(name)[:offset], rows=size["rows"], cols=size["cols"])


# A cell as it looks: its character, and the parts of its pen that show.
Cell = tuple[str, tuple[object, ...]]


def looks(
    char: str,
    fg: Color | None = None,
    bg: Color | None = None,
    bold: bool = False,
    faint: bool = False,
    italic: bool = False,
    underline: bool = False,
    blink: bool = False,
    inverse: bool = False,
    strikethrough: bool = False,
) -> Cell:
    """On a blank only the colour behind it and lines through it show: emulators
    differ in how they fill erased cells (pyavt with the whole pen, tmux with
    its background), not in how they look."""
    if char != " ":
        return char, (fg, bg, bold, faint, italic, underline, blink, inverse, strikethrough)
    behind = ("fg", fg) if inverse else ("bg", bg)
    return char, (*behind, underline, strikethrough, fg if underline or strikethrough else None)


BLANK = looks(" ")


def trimmed(cells: list[Cell]) -> list[Cell]:
    while cells and cells[-1] == BLANK:
        cells.pop()
    return cells


def wsh_cells(line: StyledLine) -> list[Cell]:
    return trimmed(
        [
            looks(
                char,
                span.fg,
                span.bg,
                span.bold,
                span.faint,
                span.italic,
                span.underline,
                span.blink,
                span.inverse,
                span.strikethrough,
            )
            for span in line
            for char in span.text
        ]
    )


SGR = re.compile(r"\x1b\[([0-9;:]*)m")
FLAGS = {1: "bold", 2: "faint", 3: "italic", 4: "underline", 5: "blink", 7: "inverse"}
FLAGS |= {9: "strikethrough"}
FLAGS_OFF = {22: ("bold", "faint"), 23: ("italic",), 24: ("underline",), 25: ("blink",)}
FLAGS_OFF |= {27: ("inverse",), 29: ("strikethrough",)}


def sgr_color(params: list[list[str]]) -> Color:
    """The colour of a 38 or 48 at the head of ``params`` (consumed), in any
    of the forms 38;5;n 38;2;r;g;b 38:5:n 38:2:r:g:b 38:2::r:g:b."""
    head = params.pop(0)
    parts = head[1:] if len(head) > 1 else [params.pop(0)[0]]
    if parts[0] == "5":
        return Color(indexed=int(parts[1] if len(parts) > 1 else params.pop(0)[0]))
    assert parts[0] == "2", head
    rgb = parts[-3:] if len(parts) >= 4 else [params.pop(0)[0] for _ in range(3)]
    red, green, blue = map(int, rgb)
    return Color(rgb=red << 16 | green << 8 | blue)


def tmux_cells(line: str, pen: dict[str, Any]) -> list[Cell]:
    """The cells of a ``capture-pane -e`` line: text and the SGR sequences between.

    The pen carries over from the line before (updated in place): tmux writes
    the capture as one stream, only the changes (it leaves out a reset before
    a row's end, and does not repeat an attribute still set at the next row's
    start).
    """
    cells = []
    pieces = SGR.split(line)
    for at, piece in enumerate(pieces):
        if at % 2 == 0:
            cells += [looks(char, **pen) for char in piece]
            continue
        params = [param.split(":") for param in (piece or "0").split(";")]
        while params:
            code = int(params[0][0] or 0)
            if code in (38, 48):
                pen["fg" if code == 38 else "bg"] = sgr_color(params)
                continue
            params.pop(0)
            if code == 0:
                pen.clear()
            elif code in FLAGS:
                pen[FLAGS[code]] = True
            elif code in FLAGS_OFF:
                pen.update(dict.fromkeys(FLAGS_OFF[code], False))
            elif 30 <= code <= 37 or 90 <= code <= 97:
                pen["fg"] = Color(indexed=code % 10 + (8 if code >= 90 else 0))
            elif 40 <= code <= 47 or 100 <= code <= 107:
                pen["bg"] = Color(indexed=code % 10 + (8 if code >= 100 else 0))
            elif code in (39, 49):
                pen["fg" if code == 39 else "bg"] = None
            else:
                raise AssertionError(f"tmux wrote SGR {code}, which this test does not know")
    return trimmed(cells)


@pytest.mark.parametrize(("name", "offset"), screens("text"))
def test_fixture_text_matches_tmux(
    name: str, offset: int, tmux_screens: dict[tuple[str, int], TmuxScreen]
) -> None:
    view = fixture_screen(name, offset).view(True)
    assert [line.rstrip() for line in view.lines] == [
        line.rstrip() for line in tmux_screens[name, offset].lines
    ]
    assert view.styled_lines is not None
    assert [texts(line).rstrip() for line in view.styled_lines] == list(view.lines)


@pytest.mark.parametrize(("name", "offset"), screens("styles"))
def test_fixture_styles_match_tmux(
    name: str, offset: int, tmux_screens: dict[tuple[str, int], TmuxScreen]
) -> None:
    styled = fixture_screen(name, offset).view(True).styled_lines
    sgr_lines = tmux_screens[name, offset].sgr_lines
    assert styled is not None and len(styled) == len(sgr_lines)
    pen: dict[str, Any] = {}
    for row, (ours, sgr_line) in enumerate(zip(styled, sgr_lines, strict=True)):
        mine, theirs = wsh_cells(ours), tmux_cells(sgr_line, pen)
        if ERASED_TAIL in TMUX_CHOICES.get(name, {}) and mine[: len(theirs)] == theirs:
            tail = mine[len(theirs) :]
            # Blanks with nothing on them but a background.
            if all(char == " " and pen[0] == "bg" and not any(pen[2:]) for char, pen in tail):
                continue
        assert mine == theirs, f"row {row}"


@pytest.mark.parametrize(("name", "offset"), screens("cursor"))
def test_fixture_cursor_and_screen_match_tmux(
    name: str, offset: int, tmux_screens: dict[tuple[str, int], TmuxScreen]
) -> None:
    theirs = tmux_screens[name, offset]
    view = fixture_screen(name, offset).view(False)
    row, col = theirs.cursor
    if PENDING_WRAP in TMUX_CHOICES.get(name, {}) and col == theirs.cols:
        col -= 1
    assert (view.cursor.row, view.cursor.col) == (row, col)
    assert view.cursor.visible == theirs.cursor_visible
    assert view.alternate_screen == theirs.alternate_screen
    assert (view.rows, view.cols) == (theirs.rows, theirs.cols)


def test_fixtures_cover_both_screens_and_stay_small(
    tmux_screens: dict[tuple[str, int], TmuxScreen],
) -> None:
    assert {screen.alternate_screen for screen in tmux_screens.values()} == {True, False}
    assert {(screen.rows, screen.cols) for screen in tmux_screens.values()} > {(24, 80)}
    for name in PROGRAMS:
        assert MANIFEST[name]["size"] <= 64 * 1024, name


@pytest.mark.parametrize("name", PROGRAMS)
def test_fixture_fed_in_random_chunks(name: str) -> None:
    data, size = recorded(name), MANIFEST[name]
    whole = fed(data, rows=size["rows"], cols=size["cols"])
    rng = random.Random(name)
    for _ in range(3):
        pieces = fed(*random_chunks(data, rng), rows=size["rows"], cols=size["cols"])
        assert pieces.view(False) == whole.view(False)
        assert pieces.view(True) == whole.view(True)
        assert every_line(pieces, True) == every_line(whole, True)


# --- alternate screen ----------------------------------------------------------


@pytest.mark.parametrize(
    ("enter", "leave"),
    [
        ("\x1b[?1049h", "\x1b[?1049l"),
        ("\x1b[?1047h", "\x1b[?1047l"),
        ("\x1b[?47h", "\x1b[?47l"),
        ("\x1b[?1049;1h", "\x1b[?1;1049l"),
        ("\u009b?1049h", "\u009b?1049l"),
        ("\x1b[?1049h", "\x1bc"),
        ("\x1b[?1049h", "\x1b[?47l"),
    ],
)
def test_alternate_screen_on_and_off(enter: str, leave: str) -> None:
    screen = fed("primary text")
    screen.feed(enter.encode())
    assert screen.alternate_screen
    screen.feed(b"\x1b[Halt text")
    view = screen.view(False)
    assert view.alternate_screen
    assert view.lines[0] == "alt text"
    screen.feed(leave.encode())
    view = screen.view(False)
    assert not view.alternate_screen
    if leave != "\x1bc":  # RIS also clears the screen
        assert view.lines[0] == "primary text"


@pytest.mark.parametrize(
    "sequence",
    [
        "\x1b[?1049h",
        "\x1b[?1;1049h",
        "\u009b?1049h",
        # Controls inside a sequence are carried out without ending it.
        "\x1b[?1049\nh",
        "\x1b[\r?1049h",
        "\x1b\x00[?1049h",
        # RIS, then the switch.
        "\x1bc\x1b[?1049h",
    ],
)
def test_alternate_screen_sequence_split_at_every_byte(sequence: str) -> None:
    data = sequence.encode()
    for cut in range(len(data) + 1):
        screen = fed(b"x", data[:cut], data[cut:])
        assert screen.alternate_screen, cut
        leave = b"\x1b[?1049l"
        for back in range(len(leave) + 1):
            screen.feed(leave[:back])
            screen.feed(leave[back:])
            assert not screen.alternate_screen, (cut, back)
            screen.feed(b"\x1b[?1049h")


@pytest.mark.parametrize(
    "text",
    [
        "\x1b[1049h",  # not private
        "x[?1049h\x1b[m",  # no CSI
        "\x1b[?1049h\x1bc",  # RIS after it
        "\x1b[?1048h",  # saves the cursor only
        "\x1b[??1049h",
        "\x1b[? 1049h",  # an intermediate makes it another sequence
        "\x1b[?1049$h",
        "\x1b[?10\x1849h",  # CAN cancels
        "\x1b[?1:1049h",  # 1049 is a sub-parameter of 1
        "\x1b[?" + "1;" * 32 + "1049h",  # the 33rd parameter runs into the 32nd
    ],
)
def test_what_is_not_an_alternate_screen_switch(text: str) -> None:
    assert not fed(text).alternate_screen


@pytest.mark.parametrize("seed", range(4))
def test_alternate_screen_tracking_agrees_with_pyavt(seed: int) -> None:
    """pyavt's own (slow, per character) parser and terminal are the oracle."""
    atoms = ["\x1b", "[", "?", "1049", "47", "1047", "1", ";", ":", "h", "l", "c", "\u009b"]
    atoms += ["\n", "\x18", "\x1a", "0", " ", ">", "x", "\x07", "]", "P", "\u009c", "65583"]
    rng = random.Random(seed)
    for _ in range(1500):
        text = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 24)))
        parser, terminal = Parser(), Terminal((10, 3), 0)
        for char in text:
            function = parser.feed(char)
            if function is not None:
                terminal.execute(function)
        tracker = SequenceTracker()
        at = 0
        while at < len(text):
            step = rng.randint(1, 5)
            tracker.feed(text[at : at + step], c1_possible=True)
            at += step
        assert tracker.alternate_screen == (terminal.active_buffer_type == BufferType.Alternate), (
            repr(text)
        )


def test_alternate_screen_scrolling_leaves_history_alone() -> None:
    screen = fed("".join(f"p{i}\r\n" for i in range(30)), rows=5, cols=10)
    before = every_line(screen, True)[0][:26]
    screen.feed(b"\x1b[?1049h" + b"".join(b"alt%d\r\n" % i for i in range(100)))
    assert screen.view(False).first_line_index == 26
    screen.feed(b"\x1b[?1049l")
    lines, _ = every_line(screen, True)
    assert lines[:26] == before
    assert not any(line.startswith("alt") for line in lines)


# --- history -----------------------------------------------------------------


def test_history_is_bounded_at_the_limit_and_pages_oldest_first() -> None:
    screen = fed("".join(f"line {i}\r\n" for i in range(1, 101)), rows=4, cols=20, limit=10)
    view = screen.view(False)
    assert (view.first_line_index, view.total_lines) == (10, 14)
    assert view.lines == ("line 98", "line 99", "line 100", "")
    page = screen.scrollback(0, 3, styled=False)
    assert page.lines == ("line 88", "line 89", "line 90")
    assert (page.total_lines, page.offset, page.styled_lines) == (14, 0, None)
    page = screen.scrollback(8, 4, False)
    assert page.lines == ("line 96", "line 97", "line 98", "line 99")
    assert (page.total_lines, page.offset) == (14, 8)
    assert screen.scrollback(12, 100, False).lines == ("line 100", "")
    assert screen.scrollback(14, 5, False).lines == ()
    assert screen.scrollback(1000, 5, False).lines == ()
    assert screen.scrollback(3, 0, False).lines == ()


def test_history_length_is_bounded_while_lines_wait_to_be_read() -> None:
    screen = fed(*[b"%d\r\n" % i for i in range(12)], rows=5, cols=20, limit=10)
    assert screen.view(False).first_line_index == 8
    screen.feed(b"".join(b"%d\r\n" % i for i in range(12, 21)))  # a burst: 9 lines off
    assert screen.view(False).first_line_index == 10
    assert screen.scrollback(0, 10, False).lines == tuple(str(i) for i in range(7, 17))


def test_history_keeps_every_line_below_the_limit() -> None:
    screen = fed("".join(f"{i}\r\n" for i in range(500)), rows=10, cols=20, limit=1000)
    lines, styled = every_line(screen, True)
    assert lines[:491] == tuple(str(i) for i in range(491))
    assert [texts(line) for line in styled[:491]] == list(lines[:491])


def test_no_history_with_a_zero_limit() -> None:
    screen = fed("".join(f"{i}\r\n" for i in range(50)), rows=5, cols=10, limit=0)
    view = screen.view(False)
    assert (view.first_line_index, view.total_lines) == (0, 5)
    assert screen.scrollback(0, 10, False).lines == view.lines


def test_scrollback_rejects_negative_offsets_and_limits() -> None:
    screen = fed("x")
    with pytest.raises(ValueError):
        screen.scrollback(-1, 5, False)
    with pytest.raises(ValueError):
        screen.scrollback(0, -5, False)


def test_history_keeps_styles() -> None:
    screen = fed("\x1b[31mred\x1b[0m plain\r\n" + "filler\r\n" * 30, rows=5, cols=20)
    page = screen.scrollback(0, 1, styled=True)
    assert page.lines == ("red plain",)
    assert page.styled_lines == ((Span("red", fg=RED), Span(" plain")),)


def test_history_keeps_styles_printed_before_a_long_plain_burst() -> None:
    """A styled row scrolls off in the middle of a chunk of plain text."""
    screen = fed("\x1b[44m\x1b[K\x1b[0m\r\n" + "".join(f"{i}\r\n" for i in range(3)), rows=5)
    screen.feed(b"".join(b"%d\r\n" % i for i in range(1000)))
    first = screen.scrollback(0, 1, styled=True).styled_lines
    assert first == ((Span(" " * 80, bg=Color(indexed=4)),),)


def test_history_keeps_styles_of_text_printed_with_a_pen_left_set() -> None:
    screen = fed("\x1b[1;32m", rows=5, cols=20)
    screen.feed(b"".join(b"%d\r\n" % i for i in range(100)))
    page = screen.scrollback(50, 1, styled=True)
    # pyavt blanks the lines it scrolls in with the whole pen, not just its
    # background: the trailing blanks are bold green too.
    assert page.styled_lines == ((Span("50".ljust(20), fg=Color(indexed=2), bold=True),),)


def test_pen_check_sees_through_modes_set_after_the_pen() -> None:
    screen = fed("\x1b[35m\x1b[?25l\x1b[4h\x1b)0\x1b[?7l\x1b[?1h", rows=5, cols=20)
    screen.feed(b"".join(b"%d\r\n" % i for i in range(100)))
    styled = screen.scrollback(60, 1, styled=True).styled_lines
    assert styled == ((Span("60".ljust(20), fg=Color(indexed=5)),),)


def test_history_keeps_styles_moved_by_a_resize() -> None:
    screen = fed("\x1b[7m" + "x" * 40 + "\x1b[0m", rows=5, cols=16)
    screen.resize(8, 5)  # the inverse rows rewrap into twice as many
    screen.feed(b"y" * 40)
    page = screen.scrollback(0, 8, styled=True)
    assert page.lines == ("xxxxx",) * 7 + ("xxxxy",)
    assert page.styled_lines == ((Span("xxxxx", inverse=True),),) * 7 + (
        (Span("xxxx", inverse=True), Span("y")),
    )


def test_history_keeps_the_order_of_plain_and_styled_lines() -> None:
    screen = fed(rows=4, cols=10)
    screen.feed(b"".join(b"%d\r\n" % i for i in range(50)))
    screen.feed(b"\x1b[31mred\x1b[0m\r\n" * 6)
    screen.feed(b"".join(b"%d\r\n" % i for i in range(50, 100)))
    numbers = [str(i) for i in range(100)]
    assert every_line(screen, False)[0] == (*numbers[:50], *["red"] * 6, *numbers[50:], "")


def test_plain_output_is_kept_as_plain_text() -> None:
    """Only lines that may carry styles are kept in the costlier styled form."""
    prompt = "\x1b[32muser\x1b[0m$ seq\r\n"
    burst = b"".join(b"%d\r\n" % i for i in range(100))
    screen = fed(prompt, burst, rows=5, cols=20, limit=10)
    screen.scrollback(0, 1, False)
    assert [type(line) for line in screen._history] == [str] * 10
    screen = fed(prompt, burst, rows=5, cols=20, limit=1000)
    screen.scrollback(0, 1, False)
    # The prompt's screenful may carry styles; the burst after it cannot.
    kinds = [type(line) for line in screen._history]
    assert kinds == [styled_mod.Dump] * 5 + [str] * 92


def test_unconverted_lines_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screen_mod, "_UNREAD_CELLS", 20 * 100)
    screen = fed(rows=5, cols=20, limit=1000)
    for _ in range(10):
        screen.feed(b"".join(b"%d\r\n" % i for i in range(70)))
        assert len(screen._unread) <= 100
    # A feed that scrolls less than a screen means output paused: convert.
    screen.feed(b"\r\n")
    assert not screen._unread
    assert screen.view(False).first_line_index == 697


def reference_history(
    chunks: list[bytes | tuple[int, int]], rows: int, cols: int, limit: int
) -> list[styled_mod.Dump]:
    """Every line scrolled off, kept with its styles: the slow, obvious way."""
    vt = Vt(cols, rows, scrollback_limit=0)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    kept: list[styled_mod.Dump] = []
    for chunk in chunks:
        if isinstance(chunk, tuple):
            _, lines = vt.resize(chunk[1], chunk[0])
        else:
            _, lines = vt.feed_str(decoder.decode(chunk).replace("\x7f", ""))
        kept.extend(map(styled_mod.dump, lines))
    return kept[-limit:] if limit else []


def random_output(rng: random.Random) -> bytes:
    """Plain bursts mixed with pens, moves, erases, scroll regions, the alternate
    screen and resets."""
    pieces = []
    for _ in range(rng.randint(5, 40)):
        kind = rng.random()
        if kind < 0.4:
            pieces.append(
                "".join(
                    f"{rng.randint(0, 10 ** rng.randint(0, 12))}\r\n"
                    for _ in range(rng.randint(1, 40))
                )
            )
        elif kind < 0.55:
            pieces.append(
                rng.choice(
                    ["\x1b[31m", "\x1b[1;44m", "\x1b[0m", "\x1b[m", "\x1b[38;2;1;2;3m", "\x1b[7m"]
                )
            )
        elif kind < 0.65:
            pieces.append(
                rng.choice(
                    [
                        "\x1b[K",
                        "\x1b[2J",
                        "\x1b[5;1H",
                        "\x1bM",
                        "\u008d",
                        "\x1b[3L",
                        "\x1b[2S",
                        "\x1b[2T",
                    ]
                )
            )
        elif kind < 0.72:
            pieces.append(rng.choice(["\x1b[2;6r", "\x1b[r", "\x1b[1;4r\x1b[4;1H"]))
        elif kind < 0.8:
            pieces.append(
                rng.choice(["\x1b[?1049h", "\x1b[?1049l", "\x1b[?47h", "\x1bc", "\x1b7", "\x1b8"])
            )
        else:
            words = ["wörd", "中文", "😀", "x" * rng.randint(1, 50), "\\", '"', "\\u{1b}[0m"]
            pieces.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) + "\r\n")
    return "".join(pieces).encode()


@pytest.mark.parametrize("seed", range(16))
def test_history_matches_keeping_every_line_styled(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines kept as plain text must be exactly those without styles, in order."""
    if seed % 2:
        # Also convert unread lines because they take too much room.
        monkeypatch.setattr(screen_mod, "_UNREAD_CELLS", 600)
    rng = random.Random(seed)
    rows, cols = rng.choice([(5, 20), (8, 30), (24, 80)])
    limit = rng.choice([0, 7, 50, 400])
    events: list[bytes | tuple[int, int]] = []
    for _ in range(rng.randint(1, 6)):
        events += random_chunks(random_output(rng), rng, rng.choice([3, 64, 5000]))
        if rng.random() < 0.3:
            events.append((rng.randint(3, 12), rng.randint(10, 40)))
        if rng.random() < 0.3:
            events.append(b"%d\r\n" % rng.randint(0, 9) * rng.randint(1, 900))
            events.append(b"\x1b[31mred\x1b[0m\r\n" * rng.randint(1, 3))
    screen = TerminalScreen(rows, cols, limit)
    for event in events:
        if isinstance(event, tuple):
            screen.resize(*event)
        else:
            screen.feed(event)
        if rng.random() < 0.1:
            screen.view(rng.random() < 0.5)
    expected = reference_history(events, rows, cols, limit)
    history = screen.view(False).first_line_index
    lines, styled = every_line(screen, True)
    assert history == len(expected)
    assert styled[:history] == tuple(map(styled_mod.styled, expected))
    assert lines[:history] == tuple(map(styled_mod.plain, expected))


# --- text --------------------------------------------------------------------


def test_utf8_split_at_every_byte() -> None:
    data = "é中😀x".encode()
    for cut in range(len(data) + 1):
        assert fed(data[:cut], data[cut:]).view(False).lines[0] == "é中😀x", cut
    assert fed(*[bytes([byte]) for byte in data]).view(False).lines[0] == "é中😀x"


def test_invalid_utf8_becomes_replacement_characters() -> None:
    lines = fed(b"a\xffb\xc3(c\xe4\xb8", b"d\xed\xa0\x80e").view(False).lines
    assert lines[0] == "a\ufffdb\ufffd(c\ufffdd\ufffd\ufffd\ufffde"


def test_a_raw_c1_byte_is_not_a_control() -> None:
    # Only U+009B encoded in UTF-8 is CSI; the lone byte 0x9B is invalid UTF-8.
    screen = fed(b"\x9b?1049h")
    assert not screen.alternate_screen
    assert screen.view(False).lines[0] == "\ufffd?1049h"


@pytest.mark.parametrize("seed", range(3))
def test_lines_hold_no_control_characters_whatever_the_output(seed: int) -> None:
    """Lines are text: no C0, DEL or C1 character, at most a character a column."""
    rng = random.Random(seed)
    screen = TerminalScreen(6, 20, 50)
    for _ in range(300):
        screen.feed(
            bytes(rng.choice([rng.randrange(256), rng.randrange(32), 0xC2]) for _ in range(20))
        )
        screen.feed(rng.choice([b"\x1b[", b"\xc2\x9b", b"\r\n", b"x" * 25, b"\x18"]))
    lines, styled = every_line(screen, True)
    texts_seen = list(lines) + [span.text for line in styled for span in line]
    for text in texts_seen:
        assert len(text) <= 20
        assert not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in text), text


def test_delete_is_ignored() -> None:
    assert fed("ab\x7fc\x1b[3\x7f1md").view(True).styled_lines == (
        (Span("abc"), Span("d", fg=RED)),
        *[()] * 23,
    )


@pytest.mark.parametrize(
    ("text", "line", "cursor_col"),
    [
        ("中文字", "中文字", 6),
        ("a😀b", "a😀b", 4),
        ("\uff57\uff49\uff44\uff45!", "\uff57\uff49\uff44\uff45!", 9),  # fullwidth "wide"
    ],
)
def test_wide_characters_take_two_columns_and_appear_once(
    text: str, line: str, cursor_col: int
) -> None:
    view = fed(text).view(True)
    assert view.lines[0] == line
    assert view.styled_lines is not None
    assert view.styled_lines[0] == (Span(line),)
    assert view.cursor.col == cursor_col


def test_wrapped_lines_carry_no_wrap_mark() -> None:
    """pyavt marks a wrapped line with a ⏎ that is not on the screen."""
    text = "\x1b[31mabcdefgh\x1b[0m⏎\r\n12345⏎⏎x\r\n1234⏎\r\n1234⏎x"
    view = fed(text, rows=7, cols=5).view(True)
    assert view.lines == ("abcde", "fgh⏎", "12345", "⏎⏎x", "1234⏎", "1234⏎", "x")
    assert view.styled_lines == (
        (Span("abcde", fg=RED),),
        (Span("fgh", fg=RED), Span("⏎")),
        (Span("12345"),),
        (Span("⏎⏎x"),),
        (Span("1234⏎"),),
        (Span("1234⏎"),),
        (Span("x"),),
    )


def test_a_wide_character_at_the_last_column_wraps() -> None:
    view = fed("12345678中", rows=3, cols=9).view(False)
    assert view.lines[:2] == ("12345678", "中")


def test_overwriting_half_a_wide_character_clears_it() -> None:
    assert fed("中文\x1b[1;2Hx").view(False).lines[0] == " x文"


def test_wide_characters_keep_their_pen() -> None:
    styled = fed("\x1b[31m中\x1b[32m文\x1b[0mx").view(True).styled_lines
    assert styled is not None
    assert styled[0] == (Span("中", fg=RED), Span("文", fg=Color(indexed=2)), Span("x"))


# --- styles ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sgr", "span"),
    [
        ("1", Span("X", bold=True)),
        ("2", Span("X", faint=True)),
        ("3", Span("X", italic=True)),
        ("4", Span("X", underline=True)),
        ("5", Span("X", blink=True)),
        ("7", Span("X", inverse=True)),
        ("9", Span("X", strikethrough=True)),
        ("31", Span("X", fg=Color(indexed=1))),
        ("37", Span("X", fg=Color(indexed=7))),
        ("90", Span("X", fg=Color(indexed=8))),
        ("97", Span("X", fg=Color(indexed=15))),
        ("40", Span("X", bg=Color(indexed=0))),
        ("46", Span("X", bg=Color(indexed=6))),
        ("100", Span("X", bg=Color(indexed=8))),
        ("107", Span("X", bg=Color(indexed=15))),
        ("38;5;3", Span("X", fg=Color(indexed=3))),
        ("38;5;12", Span("X", fg=Color(indexed=12))),
        ("38;5;196", Span("X", fg=Color(indexed=196))),
        ("48;5;255", Span("X", bg=Color(indexed=255))),
        ("38;2;255;128;1", Span("X", fg=Color(rgb=0xFF8001))),
        ("48;2;0;0;0", Span("X", bg=Color(rgb=0))),
        ("38:2::1:2:3", Span("X", fg=Color(rgb=0x010203))),
        (
            "1;3;4;5;7;9;91;48;2;1;2;3",
            Span(
                "X",
                fg=Color(indexed=9),
                bg=Color(rgb=0x010203),
                bold=True,
                italic=True,
                underline=True,
                blink=True,
                inverse=True,
                strikethrough=True,
            ),
        ),
    ],
)
def test_sgr_styles(sgr: str, span: Span) -> None:
    styled = fed(f"a\x1b[{sgr}mX\x1b[0mb").view(True).styled_lines
    assert styled is not None
    assert styled[0] == (Span("a"), span, Span("b"))


def test_resets_and_merging() -> None:
    styled = (
        fed(
            "\x1b[1mbold\x1b[22m \x1b[31mred\x1b[39m \x1b[7mrev\x1b[27m"
            "\x1b[32mgr\x1b[32meen\x1b[0m  \x1b[41m  \x1b[0m   "
        )
        .view(True)
        .styled_lines
    )
    assert styled is not None
    assert styled[0] == (
        Span("bold", bold=True),
        Span(" "),
        Span("red", fg=RED),
        Span(" "),
        Span("rev", inverse=True),
        Span("green", fg=Color(indexed=2)),
        Span("  "),
        Span("  ", bg=RED),
    )


def test_blank_lines_have_no_spans_and_plain_views_no_styles() -> None:
    screen = fed("x")
    assert screen.view(False).styled_lines is None
    styled = screen.view(True).styled_lines
    assert styled is not None
    assert styled[1:] == ((),) * 23


def test_styled_lines_carry_text_exactly_as_plain_lines() -> None:
    text = 'back\\slash "quoted" \\u{1b}[0m \u00a0nb e\u0301 \u200bzw \ufffd \\\\'
    view = fed(f"\x1b[33m{text}\x1b[0m\r\n{text}").view(True)
    assert view.styled_lines is not None
    assert view.lines[:2] == (text, text)
    assert view.styled_lines[0] == (Span(text, fg=Color(indexed=3)),)
    assert view.styled_lines[1] == (Span(text),)


def spans_from_cells(line: Line) -> StyledLine:
    """The spans of a line read cell by cell: slow, independent of the fast path."""

    def color(value: AvtColor | None) -> Color | None:
        if value is None:
            return None
        if isinstance(value, AvtColor.Indexed):
            return Color(indexed=value[0])
        assert isinstance(value, AvtColor.RGB)
        return Color(rgb=value[0] << 16 | value[1] << 8 | value[2])

    runs: list[tuple[tuple[object, ...], str]] = []
    for cell in line.cells:
        if cell.width == 0:
            continue
        pen = cell.pen
        key = (
            color(pen.foreground),
            color(pen.background),
            pen.bold,
            pen.italic,
            pen.underline,
            pen.inverse,
            pen.faint,
            pen.strikethrough,
            pen.blink,
        )
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1] + cell.char)
        else:
            runs.append((key, cell.char))
    spans = [Span(text, *key) for key, text in runs]  # type: ignore[arg-type]
    if spans and spans[-1] == Span(spans[-1].text):
        spans[-1] = Span(spans[-1].text.rstrip())
        if not spans[-1].text:
            spans.pop()
    return tuple(spans)


@pytest.mark.parametrize("seed", range(6))
def test_fast_styles_match_reading_every_cell(seed: int) -> None:
    rng = random.Random(seed)
    vt = Vt(30, 6, scrollback_limit=0)
    pens = ["0", "1", "2", "3;4", "5;7", "9", "31", "97", "44", "105", "38;5;200", "48;5;3"]
    pens += ["38;2;1;2;3", "48;2;250;0;9", "39", "49", "22", "27"]
    words = ["a", "\\", '"', "\\u{1b}[0m", "é", "e\u0301", "中", "😀", "\u00a0", " ", "x\\\\y"]
    words += ["⏎", "⏎⏎", "0123456789" * 3]
    for _ in range(60):
        text = "".join(
            rng.choice([f"\x1b[{rng.choice(pens)}m", rng.choice(words), "\x1b[K", "\r\n"])
            for _ in range(40)
        )
        vt.feed_str(f"\x1b[{rng.randint(1, 6)};{rng.randint(1, 30)}H{text}")
        for line in vt.view():
            compact = styled_mod.dump(line)
            assert styled_mod.styled(compact) == spans_from_cells(line), str(line)
            assert styled_mod.plain(compact) == line.text.rstrip(), str(line)


# --- screen ------------------------------------------------------------------


def test_cursor_position_and_visibility() -> None:
    screen = fed("ab\r\ncde")
    assert screen.view(False).cursor == Cursor(row=1, col=3, visible=True)
    screen.feed(b"\x1b[?25l\x1b[5;10H")
    assert screen.view(False).cursor == Cursor(row=4, col=9, visible=False)
    screen.feed(b"\x1b[?25h")
    assert screen.view(False).cursor.visible


def test_cursor_stays_on_screen_while_a_wrap_is_pending() -> None:
    assert fed("x" * 80).view(False).cursor == Cursor(row=0, col=79, visible=True)


def test_resize_changes_the_view_and_pushes_lines_to_history() -> None:
    screen = fed("".join(f"{i}\r\n" for i in range(10)) + "last", rows=12, cols=20)
    screen.resize(5, 30)
    view = screen.view(True)
    assert (view.rows, view.cols, len(view.lines)) == (5, 30, 5)
    assert (screen.rows, screen.cols) == (5, 30)
    assert view.styled_lines is not None and len(view.styled_lines) == 5
    # The blank rows under the cursor go first, then rows from the top.
    assert view.lines == ("6", "7", "8", "9", "last")
    assert (view.first_line_index, view.total_lines) == (6, 11)
    assert screen.scrollback(0, 6, False).lines == tuple(str(i) for i in range(6))
    screen.resize(12, 10)
    assert len(screen.view(False).lines) == 12


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TerminalScreen(0, 80)
    with pytest.raises(ValueError):
        TerminalScreen(24, 0)
    with pytest.raises(ValueError):
        TerminalScreen(24, 80, scrollback_limit=-1)
    with pytest.raises(ValueError):
        fed("x").resize(24, 0)


def test_view_is_cached_until_the_next_feed_or_resize() -> None:
    screen = fed("hello")
    plain, styled = screen.view(False), screen.view(True)
    assert screen.view(False) is plain
    assert screen.view(True) is styled
    assert plain is not styled
    assert styled.lines == plain.lines and plain.styled_lines is None
    screen.feed(b"\xe4")  # half a character: nothing changed yet
    assert screen.view(False) is plain
    screen.feed(b"\xb8\xad")
    after = screen.view(False)
    assert after is not plain and after.lines[0] == "hello中"
    assert screen.view(True) is not styled
    screen.resize(24, 80)
    assert screen.view(False) is not after


@pytest.mark.parametrize("seed", range(6))
def test_views_follow_every_change(seed: int) -> None:
    """The rows a view reuses from the last one must be the ones that did not change."""
    rng = random.Random(seed)
    screen = TerminalScreen(8, 30, 100)
    vt = Vt(30, 8, scrollback_limit=0)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for data in random_chunks(random_output(rng), rng, 40):
        screen.feed(data)
        vt.feed_str(decoder.decode(data).replace("\x7f", ""))
        styled = rng.random() < 0.5
        view: ScreenView = screen.view(styled)
        assert view.lines == tuple(line.text.rstrip() for line in vt.view())
        if styled:
            assert view.styled_lines == tuple(spans_from_cells(line) for line in vt.view())
