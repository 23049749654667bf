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
import logging
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter

# The public ``avt`` package re-exports these without marking them for type
# checkers; the typed stubs live on the extension module itself.
from avt._avt import Line, Vt

from wsh import defaults
from wsh.terminal import styled as _styled
from wsh.terminal.sequences import (
    COSTLY,
    SEQUENCE_PREFIX,
    SequenceTracker,
    clamp_repeat,
    repeat_count,
    rewrite_repeat,
)
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

_log = logging.getLogger(__name__)
_text = attrgetter("text")
_DEFAULT_PEN = "\x1b[0m"
# Put a terminal in a known state before a repaint: the primary screen, a
# soft reset (pen, modes, scroll region, charsets; it turns autowrap off,
# hence ?7h), then cleared with the cursor home. pyavt's dump assumes that.
_REPAINT_PREFIX = "\x1b[?1049l\x1b[!p\x1b[?7h\x1b[H\x1b[2J"
# The most output fed to pyavt at once: it slows down on big inputs (by half
# at 64 KiB).
_SLICE = 4096
# The most work fed to pyavt at once, in cells touched: a few milliseconds.
# Measured per sequence on a blank 1000x1000 screen: ESC#8 9.7 ms, ESC c
# 9.8 ms, CSI 65535 S 55 ms (most of it keeping the 1000 lines scrolled off);
# so one such sequence per chunk there, and 26 on a 24x80 screen.
_CHUNK_CELLS = 50_000
# An unfinished sequence longer than this is fed without waiting for its end.
_MAX_HOLD = 4096
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
    styles_truncated: bool = False
    """Some styled rows were drawn with the default pen: over the styles budget."""


@dataclass(frozen=True, slots=True)
class ScrollbackPage:
    """A slice of all lines (history, then the visible rows), oldest first."""

    lines: tuple[str, ...]
    styled_lines: tuple[StyledLine, ...] | None
    total_lines: int
    offset: int
    truncated: bool = False
    """The page stopped before ``limit`` lines to stay within its size budget."""


class TerminalScreen:
    """A terminal screen fed with a program's raw output.

    Not thread-safe: one owner feeds it and reads it (the event loop).
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        scrollback_limit: int = 10_000,
        scrollback_bytes: int = defaults.SCROLLBACK_BYTES,
    ) -> None:
        _check_size(rows, cols)
        if scrollback_limit < 0 or scrollback_bytes < 0:
            raise ValueError(
                f"scrollback_limit and scrollback_bytes must be >= 0, "
                f"got {scrollback_limit} and {scrollback_bytes}"
            )
        self._rows = rows
        self._cols = cols
        self._limit = scrollback_limit
        self._byte_limit = scrollback_bytes
        self._vt = Vt(cols, rows, scrollback_limit=0)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        # Decoded output not fed to pyavt yet, the last ``_held`` characters
        # of it an unfinished sequence waiting for its end.
        self._pending = ""
        self._held = 0
        self._burst_scrolled = 0  # lines scrolled off since the queue was last empty
        self._panicked = False  # pyavt failed on some output (logged once)
        self._sequences = SequenceTracker()
        # Oldest first: plain text (str), or styled.Dump where styles may matter.
        self._history: deque[str] = deque()
        self._history_bytes = 0  # sys.getsizeof of every line in _history
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
        self._styled_cost: list[int] = []  # per row: length of its SGR rendering
        self._degraded: set[int] = set()  # rows drawn plain, over the styles budget
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

    @property
    def backlog(self) -> bool:
        """Whether output written is waiting to be fed to the emulator."""
        return len(self._pending) > self._held

    def repaint(self) -> bytes:
        """Escape sequences that make a terminal of this size, in any state,
        show the screen as emulated so far: contents, styles, cursor, the
        alternate screen and the modes pyavt tracks (what :meth:`view` shows).

        Output written but not emulated yet is not in it: see :meth:`unfed`.
        """
        # pyavt writes CSI as the C1 character, which a UTF-8 terminal may
        # print rather than obey (tmux does); its cells never hold one.
        dump = self._vt.dump().replace("\x9b", "\x1b[")
        return (_REPAINT_PREFIX + dump).encode()

    def unfed(self) -> bytes:
        """The output written but not emulated yet, as bytes: what a terminal
        shown :meth:`repaint` must receive next to catch up."""
        return self._pending.encode() + self._decoder.getstate()[0]

    def feed(self, data: bytes) -> None:
        """Take raw output bytes and emulate them all now.

        A UTF-8 or escape sequence may be split across calls.
        """
        self.write(data)
        self.advance(math.inf)

    def write(self, data: bytes) -> None:
        """Queue raw output bytes for :meth:`advance`, which emulates them."""
        text = self._decoder.decode(data)
        if "\x7f" in text:
            # pyavt prints DEL as a glyph; terminals ignore it.
            text = text.replace("\x7f", "")
        if text:
            self._pending += text
            self._held = 0

    def advance(self, deadline: float) -> bool:
        """Emulate queued output until it is all done or ``time.monotonic()``
        passes ``deadline``; True once nothing more can be done now.

        Work goes in chunks of bounded cost (``_next_chunk``), so the call
        overruns ``deadline`` by one chunk at most. An unfinished escape
        sequence at the end waits for the rest of it.
        """
        while self.backlog:
            chunk = self._next_chunk()
            if chunk:
                self._feed_chunk(chunk)
            if time.monotonic() >= deadline:
                break
        if self.backlog:
            return False
        if self._unread and self._burst_scrolled < self._rows:
            # Output paused: a good time to read the lines that scrolled off.
            self._read()
        self._burst_scrolled = 0
        return True

    def _next_chunk(self) -> str:
        """Take the next piece of queued output, never cutting a sequence, of
        bounded cost: at most ``_SLICE`` characters and about
        ``_CHUNK_CELLS`` cells of work (``sequences.COSTLY``, each costing a
        screenful, and REP counts, clamped to what can show).

        Returns "" (and sets ``_held``) when all that is left is the start of
        a sequence still to be finished by later output.
        """
        text = self._pending
        end = self._safe_end(text, min(len(text), _SLICE))
        if end == 0:
            self._held = len(text)
            return ""
        area = self._rows * self._cols
        budget = _CHUNK_CELLS
        parts: list[str] = []
        done = 0
        costly = text.find("\x1b", 0, end) >= 0 or text.find("\x9b", 0, end) >= 0
        for match in COSTLY.finditer(text, 0, end) if costly else ():
            if match.group(2) != "b":
                cost = area
            else:
                count = repeat_count(match.group(1))
                if count is None:
                    continue
                clamped = clamp_repeat(count, self._rows, self._cols)
                step = min(clamped, max(budget, 1))
                if step != count:
                    # Rewrite the REP to repeat ``step`` times; what is left
                    # of a clamped count comes back as a REP of its own.
                    params = rewrite_repeat(match.group(1), step)
                    parts += (text[done : match.start(1)], params, "b")
                    done = match.end()
                    if step < clamped:
                        end = match.end()
                        text = f"{text[:end]}\x1b[{clamped - step}b{text[end:]}"
                        break
                cost = step
            if cost > budget and match.start() > 0 and budget < _CHUNK_CELLS:
                # Leave this sequence for the next chunk. (A rewritten REP
                # was never over the budget, so ``parts`` is behind us.)
                end = match.start()
                break
            budget -= cost
        parts.append(text[done:end])
        self._pending = text[end:]
        return "".join(parts)

    @staticmethod
    def _safe_end(text: str, end: int) -> int:
        """``end``, or an earlier or later position so that ``text[:end]`` does
        not end inside an escape sequence; 0 to wait for more output."""
        start = max(text.rfind("\x1b", 0, end), text.rfind("\x9b", 0, end))
        if start < 0:
            return end
        prefix = SEQUENCE_PREFIX.match(text, start)
        assert prefix is not None  # the pattern matches any ESC or CSI
        if prefix.end() < end:
            return end  # finished (or aborted) before ``end``
        if start > 0:
            return start
        if prefix.end() < len(text):
            return prefix.end() + 1  # a sequence longer than a slice, taken whole
        # A sequence not finished yet: wait for its end, unless it is already
        # absurdly long (then it goes to pyavt as it is, which bounds its
        # cost: one unclamped REP per _MAX_HOLD characters at most).
        return 0 if len(text) <= _MAX_HOLD else len(text)

    def _feed_chunk(self, text: str) -> None:
        plain = self._sequences.feed(text, not text.isascii())
        if not plain:
            self._default_pen = None
        self._plain_view = self._styled_view = None
        try:
            changed, lines = self._vt.feed_str(text)
        except BaseException as exc:
            # pyavt 0.1.2 panics (a BaseException) printing a wide character
            # on a 1-column screen; what the chunk did up to there stays.
            if type(exc).__name__ != "PanicException":
                raise
            if not self._panicked:
                _log.warning("terminal emulator failed on a chunk of output; it was skipped")
            self._panicked = True
            changed, lines = list(range(self._rows)), []
        self._dirty.update(changed)
        if lines:
            self._scrolled(lines, plain)
            self._burst_scrolled += len(lines)
        if not (plain and self._default_pen):
            self._styled_ahead = self._rows

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
            styles_truncated=styled and bool(self._degraded),
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
        fits = _fitting(past, styled)
        truncated = fits < len(past)
        if truncated:
            past, stop = past[:fits], offset + fits
        first, last = max(offset - kept, 0), max(stop - kept, 0)
        lines = tuple(map(_styled.plain, past)) + view.lines[first:last]
        styled_lines = None
        if view.styled_lines is not None:
            styled_lines = tuple(map(_styled.styled, past)) + view.styled_lines[first:last]
        return ScrollbackPage(lines, styled_lines, total, offset, truncated)

    def _reset_rows(self) -> None:
        self._plain_rows = [""] * self._rows
        self._styled_rows = [()] * self._rows
        self._styled_cost = [0] * self._rows
        self._degraded = set()
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
        """Spans for the rows out of date, top to bottom, while the screen's
        SGR rendering stays within ``defaults.STYLED_RENDER_CHARS``; the rows
        after that are drawn with the default pen, and tried again at the
        next view.

        Spans cost about 14 us each to build when every cell has its own
        colours (200x1000 such cells took 2.7 s), the protobuf as much again;
        the budget bounds that to tens of milliseconds per view.
        """
        stale = self._stale_styled | self._degraded
        self._degraded = set()
        lines = self._vt.view()
        budget = defaults.STYLED_RENDER_CHARS
        for row in range(self._rows):
            if row not in stale:
                budget -= self._styled_cost[row]
            elif budget > 0:
                dump = _styled.dump(lines[row])
                budget -= len(dump)
                self._styled_cost[row] = len(dump)
                self._styled_rows[row] = _styled.styled(dump)
            else:
                self._styled_cost[row] = 0
                self._styled_rows[row] = _styled.styled(self._plain_rows[row])
                self._degraded.add(row)
        self._stale_styled.clear()

    @property
    def styles_degraded(self) -> bool:
        """Whether the last styled view drew some rows plain, over the budget."""
        return bool(self._degraded)

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
            self._push(list(map(_styled.dump, lines[:styled_count])))
            lines = lines[styled_count:]
        if lines:
            self._unread.extend(lines)
            if len(self._unread) * self._cols > _UNREAD_CELLS:
                self._read()

    def _read(self) -> None:
        """Turn the unread lines into text."""
        if self._unread:
            self._push(list(map(str.rstrip, map(_text, self._unread))))
            self._unread.clear()

    def _push(self, lines: list[str]) -> None:
        """Append converted lines to history, then drop the oldest beyond the
        line limit or the byte budget."""
        history = self._history
        history.extend(lines)
        self._history_bytes += sum(map(sys.getsizeof, lines))
        excess = len(history) - self._limit
        for _ in range(excess):
            self._history_bytes -= sys.getsizeof(history.popleft())
        while self._history_bytes > self._byte_limit:
            self._history_bytes -= sys.getsizeof(history.popleft())

    @property
    def history_bytes(self) -> int:
        """Memory held by the converted history lines (``sys.getsizeof``)."""
        return self._history_bytes

    def _pen_is_default(self) -> bool:
        # pyavt's dump ends with the pen, as ESC [ 0 ... m, and then only
        # modes, written with the C1 CSI; cells never hold an ESC.
        state = self._vt.dump()
        return state.startswith(_DEFAULT_PEN, state.rfind("\x1b[0"))


def _fitting(lines: list[str], styled: bool) -> int:
    """How many of ``lines``, from the first, fit in a response: their stored
    text (plain, or the SGR rendering) within ``defaults.RENDER_BYTES_MAX``
    and, styled, their renderings within ``defaults.STYLED_RENDER_CHARS``.
    At least one, so that paging always moves on."""
    budget = defaults.RENDER_BYTES_MAX
    styles = defaults.STYLED_RENDER_CHARS if styled else math.inf
    for count, line in enumerate(lines):
        budget -= len(line)
        if isinstance(line, _styled.Dump):
            styles -= len(line)
        if (budget < 0 or styles < 0) and count:
            return count
    return len(lines)


def _check_size(rows: int, cols: int) -> None:
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows}x{cols}")
