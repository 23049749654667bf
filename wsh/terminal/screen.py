"""The terminal emulator behind a small interface: PTY bytes in; text, styles,
cursor and a bounded history out.

The engine is pyavt (asciinema's ``avt`` in Rust), chosen on measurement: see
``bench/EMULATOR.md``. It keeps no history of its own; the lines it scrolls
off come back from every ``feed_str`` and we keep them here, each as cheaply
as it allows. A line's plain text costs pyavt 0.4 us; its styles (the SGR
rendering, ``styled.dump``) 1.7 us, which would halve the speed of a burst
like ``seq 1 1000000``. But a line can only carry a pen other than the
default if it was on screen while output other than plain text (see
``SequenceTracker.feed``) arrived, or while the pen was not the default.
Plain text only scrolls lines up, so after it starts with the default pen,
no more than a screenful of lines scrolls off before every line left is one
printed with the default pen: those are kept as text alone.

Even the text is taken late. A burst can scroll far more lines than history
holds, so plain lines wait as pyavt ``Line`` objects until output pauses (a
feed that scrolls less than a screen), history is read, or they take too
much memory (``_UNREAD_CELLS``); the ones pushed out of history meanwhile
are never converted at all. That doubles the speed of ``seq``-like output.
"""

from __future__ import annotations

import codecs
from collections import deque
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter

# The public ``avt`` package re-exports these without marking them for type
# checkers; the typed stubs live on the extension module itself.
from avt._avt import Line, Vt

from wsh.terminal import styled as _styled
from wsh.terminal.sequences import SequenceTracker
from wsh.terminal.styled import Color, Span, StyledLine

__all__ = [
    "Color",
    "Cursor",
    "ScreenView",
    "ScrollbackPage",
    "Span",
    "StyledLine",
    "TerminalScreen",
]

_text = attrgetter("text")
_DEFAULT_PEN = "\x1b[0m"
_SLICE = 4096
# Cells of scrolled-off lines left unconverted, at about 25 bytes each: enough
# for a full history of 10,000 lines of 100 columns.
_UNREAD_CELLS = 1 << 20


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the cursor is, zero-based, and whether the program shows it."""

    row: int
    col: int
    visible: bool


@dataclass(frozen=True, slots=True)
class ScreenView:
    """One rendering of the visible screen."""

    rows: int
    cols: int
    lines: tuple[str, ...]
    """Each visible row, trailing blanks trimmed; always ``rows`` entries."""
    styled_lines: tuple[StyledLine, ...] | None
    """The same rows as spans, or None when a plain view was asked for."""
    cursor: Cursor
    alternate_screen: bool
    first_line_index: int
    """Index of the top visible row among all lines: the history length."""
    total_lines: int
    """History lines plus visible rows."""


@dataclass(frozen=True, slots=True)
class ScrollbackPage:
    """A slice of all lines (history, then the visible rows), oldest first."""

    lines: tuple[str, ...]
    styled_lines: tuple[StyledLine, ...] | None
    total_lines: int
    offset: int


class TerminalScreen:
    """A terminal screen fed with a program's raw output.

    Not thread-safe: one owner feeds it and reads it (the event loop).
    """

    def __init__(self, rows: int, cols: int, scrollback_limit: int = 10_000) -> None:
        _check_size(rows, cols)
        if scrollback_limit < 0:
            raise ValueError(f"scrollback_limit must be >= 0, got {scrollback_limit}")
        self._rows = rows
        self._cols = cols
        self._limit = scrollback_limit
        self._vt = Vt(cols, rows, scrollback_limit=0)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._sequences = SequenceTracker()
        # Oldest first: plain text (str), or styled.Dump where styles may matter.
        self._history: deque[str] = deque(maxlen=scrollback_limit)
        # Plain lines scrolled off after everything in _history, not yet text.
        self._unread: deque[Line] = deque(maxlen=scrollback_limit)
        # The pen is the default (True), is not (False), or was not checked
        # since output other than plain text (None).
        self._default_pen: bool | None = True
        # How many of the next lines to scroll off may carry styles.
        self._styled_ahead = 0
        # Per visible row: plain text, spans, and which are out of date.
        self._plain_rows: list[str] = []
        self._styled_rows: list[StyledLine] = []
        self._dirty: set[int] = set()  # rows pyavt changed since the last view
        self._stale_styled: set[int] = set()  # rows whose spans are out of date
        self._plain_view: ScreenView | None = None
        self._styled_view: ScreenView | None = None
        self._reset_rows()

    @property
    def rows(self) -> int:
        """Visible rows."""
        return self._rows

    @property
    def cols(self) -> int:
        """Visible columns."""
        return self._cols

    @property
    def alternate_screen(self) -> bool:
        """True while the program shows the alternate screen (vi, htop, less...)."""
        return self._sequences.alternate_screen

    def feed(self, data: bytes) -> None:
        """Take raw output bytes; a UTF-8 sequence may be split across calls."""
        # U+0080 to U+009F, the C1 controls, are C2 80 to C2 9F in UTF-8; the
        # C2 may have come at the end of the last chunk.
        c1_possible = b"\xc2" in data or self._decoder.getstate()[0] == b"\xc2"
        text = self._decoder.decode(data)
        if not text:
            return
        if "\x7f" in text:
            # pyavt prints DEL as a glyph; terminals ignore it.
            text = text.replace("\x7f", "")
        plain = self._sequences.feed(text, c1_possible)
        if not plain:
            self._default_pen = None
        self._plain_view = self._styled_view = None
        scrolled = 0
        # pyavt slows down on big inputs (by half at 64 KiB): feed it slices.
        for start in range(0, len(text), _SLICE):
            changed, lines = self._vt.feed_str(text[start : start + _SLICE])
            self._dirty.update(changed)
            if lines:
                self._scrolled(lines, plain)
                scrolled += len(lines)
        if not (plain and self._default_pen):
            self._styled_ahead = self._rows
        if self._unread and scrolled < self._rows:
            self._read()

    def resize(self, rows: int, cols: int) -> None:
        """Change the screen size; lines pushed off the top go to history.

        pyavt rewraps lines to the new width. On the alternate screen it drops
        the primary lines that would go to history instead.
        """
        _check_size(rows, cols)
        self._read()
        _, scrolled = self._vt.resize(cols, rows)
        self._rows, self._cols = rows, cols
        self._keep(scrolled, len(scrolled))
        # Rewrapping moves styled cells to other rows.
        self._styled_ahead = rows
        self._reset_rows()

    def view(self, styled: bool) -> ScreenView:
        """The visible screen; the same object until the next feed or resize.

        A styled view carries the plain lines too.
        """
        cached = self._styled_view if styled else self._plain_view
        if cached is not None:
            return cached
        if self._dirty:
            self._refresh_rows()
        styled_lines = None
        if styled:
            if self._stale_styled:
                self._refresh_styled_rows()
            styled_lines = tuple(self._styled_rows)
        plain = self._plain_view.lines if self._plain_view is not None else tuple(self._plain_rows)
        cursor = self._vt.cursor
        history = min(self._limit, len(self._history) + len(self._unread))
        view = ScreenView(
            rows=self._rows,
            cols=self._cols,
            lines=plain,
            styled_lines=styled_lines,
            # pyavt parks the cursor one past the last column while a wrap is pending.
            cursor=Cursor(cursor.row, min(cursor.col, self._cols - 1), cursor.visible),
            alternate_screen=self._sequences.alternate_screen,
            first_line_index=history,
            total_lines=history + self._rows,
        )
        if styled:
            self._styled_view = view
        else:
            self._plain_view = view
        return view

    def scrollback(self, offset: int, limit: int, styled: bool) -> ScrollbackPage:
        """``all[offset:offset + limit]`` of history then the visible rows, oldest first.

        An offset past the end gives no lines; it is not an error.
        """
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, got {offset} and {limit}")
        view = self.view(styled)
        self._read()
        kept = len(self._history)
        total = kept + self._rows
        stop = min(offset + limit, total)
        past = list(islice(self._history, offset, stop)) if offset < kept else []
        first, last = max(offset - kept, 0), max(stop - kept, 0)
        lines = tuple(map(_styled.plain, past)) + view.lines[first:last]
        styled_lines = None
        if view.styled_lines is not None:
            styled_lines = tuple(map(_styled.styled, past)) + view.styled_lines[first:last]
        return ScrollbackPage(lines, styled_lines, total, offset)

    def _reset_rows(self) -> None:
        self._plain_rows = [""] * self._rows
        self._styled_rows = [()] * self._rows
        self._dirty = set(range(self._rows))
        self._stale_styled = set()
        self._plain_view = self._styled_view = None

    def _refresh_rows(self) -> None:
        lines = self._vt.view()
        for row in self._dirty:
            self._plain_rows[row] = lines[row].text.rstrip()
        self._stale_styled |= self._dirty
        self._dirty.clear()

    def _refresh_styled_rows(self) -> None:
        lines = self._vt.view()
        for row in self._stale_styled:
            self._styled_rows[row] = _styled.styled(_styled.dump(lines[row]))
        self._stale_styled.clear()

    def _scrolled(self, lines: list[Line], plain: bool) -> None:
        """Keep lines a feed scrolled off; ``plain``: whether the feed was plain text."""
        if plain and self._default_pen is None and len(lines) > self._styled_ahead:
            self._default_pen = self._pen_is_default()
        if plain and self._default_pen:
            styled_count = min(self._styled_ahead, len(lines))
            self._styled_ahead -= styled_count
        else:
            styled_count = len(lines)
        self._keep(lines, styled_count)

    def _keep(self, lines: list[Line], styled_count: int) -> None:
        """Add lines scrolled off to history; only the first ``styled_count`` may carry styles."""
        if len(lines) > self._limit:
            # Only the newest fit; the older ones would be dropped at once.
            styled_count -= len(lines) - self._limit
            lines = lines[len(lines) - self._limit :]
        if styled_count > 0:
            self._read()
            self._history.extend(map(_styled.dump, lines[:styled_count]))
            lines = lines[styled_count:]
        if lines:
            self._unread.extend(lines)
            if len(self._unread) * self._cols > _UNREAD_CELLS:
                self._read()

    def _read(self) -> None:
        """Turn the unread lines into text."""
        if self._unread:
            self._history.extend(map(str.rstrip, map(_text, self._unread)))
            self._unread.clear()

    def _pen_is_default(self) -> bool:
        # pyavt's dump ends with the pen, as ESC [ 0 ... m, and then only
        # modes, written with the C1 CSI; cells never hold an ESC.
        state = self._vt.dump()
        return state.startswith(_DEFAULT_PEN, state.rfind("\x1b[0"))


def _check_size(rows: int, cols: int) -> None:
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows}x{cols}")
