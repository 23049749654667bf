"""What a program's output does that pyavt does not report.

pyavt keeps the screen but says neither which buffer is shown nor whether a
chunk of output could have changed any pen. We scan the decoded output for
both, carrying an unfinished escape sequence over to the next chunk so that
any split of the output gives the same answers.

The alternate screen is switched by DECSET/DECRST of private modes 47, 1047
and 1049 (``CSI ? Pm h`` / ``CSI ? Pm l``, CSI being ``ESC [`` or the C1
character U+009B) and left by RIS (``ESC c``). The rules below mirror pyavt
0.1.2's parser (the tests compare the two on random input):

* C0 controls other than CAN, SUB and ESC, and DEL, may sit anywhere inside a
  sequence without breaking it (the terminal executes them on the way);
* a parameter is its first ``:`` sub-parameter, empty means 0, and numbers
  wrap at 16 bits, so only the last 16 digits matter;
* a sequence holds at most 32 parameters: later ``;`` are ignored and their
  digits run on into the 32nd.

An unfinished sequence longer than 512 characters is not carried over.
"""

from __future__ import annotations

import math
import re

# Controls that pass through a sequence without ending it.
_PASS = r"\x00-\x17\x19\x1c-\x1f\x7f"
_PASS_CHARS = frozenset([*map(chr, range(0x18)), "\x19", *map(chr, range(0x1C, 0x20)), "\x7f"])
# Searched from the ``?`` (then checked for the CSI before it) and from ESC:
# patterns that start with one literal character are found fast.
_MODES = re.compile(rf"\?([0-9;:{_PASS}]*)([hl])")
_RESET = re.compile(rf"\x1b[{_PASS}]*c")
# The longest start of an escape or control sequence: what comes after it is
# its final character (or a character that aborts it).
_PREFIX = (
    rf"(?:\x1b[{_PASS}]*(?:[\x20-\x2f][\x20-\x2f{_PASS}]*|\[[\x20-\x3f{_PASS}]*)?"
    rf"|\x9b[\x20-\x3f{_PASS}]*)"
)
SEQUENCE_PREFIX = re.compile(_PREFIX)
# An escape or control sequence still waiting for its final character.
_UNFINISHED = re.compile(_PREFIX + r"\Z")
# Sequences whose cost does not follow their length: a CSI that scrolls,
# inserts or deletes lines (S T L M), erases the display (J), sets or resets
# modes (h l: the alternate screen copies and clears it) or repeats the last
# character (b), and RIS (ESC c) and DECALN (ESC # 8). Each can touch every
# cell of the screen. Group 1 holds a CSI's parameters, group 2 its final.
COSTLY = re.compile(
    rf"(?:\x1b[{_PASS}]*\[|\x9b)([\x20-\x3f{_PASS}]*)([STLMJhlb])"
    rf"|\x1b[{_PASS}]*(?:c|#[{_PASS}]*8)"
)
_PASS_RUN = re.compile(f"[{_PASS}]+")
_REP_PARAMS = re.compile(rf"[0-9;:{_PASS}]*")
# Besides ESC, the C1 controls: they too move lines or start sequences.
_C1 = re.compile("[\x80-\x9f]")
_NOT_PARAM = re.compile(r"[^0-9;:]")
_ALT_MODES = frozenset({47, 1047, 1049})
_MAX_PARAMS = 32
# Longer unfinished sequences are dropped rather than buffered without bound;
# real programs never send one anywhere near this long.
_MAX_CARRY = 512


def _after_csi(text: str, at: int) -> bool:
    """Whether ``text[at]`` comes right after a CSI, passing controls aside."""
    at -= 1
    while at >= 0 and text[at] in _PASS_CHARS:
        at -= 1
    if at < 0 or text[at] != "[":
        return at >= 0 and text[at] == "\x9b"
    at -= 1
    while at >= 0 and text[at] in _PASS_CHARS:
        at -= 1
    return at >= 0 and text[at] == "\x1b"


def repeat_count(params: str) -> int | None:
    """How many times a REP (``CSI params b``) repeats the last character, as
    pyavt reads it, or None if pyavt ignores it (a private marker or an
    intermediate byte among the parameters)."""
    if not _REP_PARAMS.fullmatch(params):
        return None
    digits = _PASS_RUN.sub("", params).partition(";")[0].partition(":")[0][-16:]
    return max(int(digits or "0") % 65536, 1)


def clamp_repeat(count: int, rows: int, cols: int) -> int:
    """The smallest REP count that leaves the screen as ``count`` would.

    Once a screen (or its scroll region) is full of the repeated character,
    each further row of it only scrolls, so the screen then repeats with a
    period of one row: ``cols`` narrow characters, or ``cols // 2`` wide
    ones. A count past one screen plus a row plus a period is cut back by
    whole periods. Only the lines scrolled off into history differ: fewer
    copies of the same line. (Checked against pyavt on random screens, modes,
    margins and characters by the tests.)
    """
    period = math.lcm(cols, max(cols // 2, 1))
    saturated = (rows + 1) * cols + period
    return count if count <= saturated else saturated + (count - saturated) % period


def rewrite_repeat(params: str, count: int) -> str:
    """REP parameters ``params`` with the count replaced by ``count``.

    The controls that may sit among the digits run as the sequence is parsed,
    before its final character acts, so moving them ahead of the new digits
    changes nothing.
    """
    first, sep, rest = params.partition(";")
    head, colon, sub = first.partition(":")
    controls = "".join(_PASS_RUN.findall(head))
    return f"{controls}{count}{colon}{sub}{sep}{rest}"


def _switches_screen(raw: str) -> bool:
    """Whether a DECSET/DECRST parameter string names 47, 1047 or 1049, as pyavt reads it."""
    if raw.isdigit():  # one plain parameter, by far the most common
        return int(raw[-16:]) % 65536 in _ALT_MODES
    parts = _NOT_PARAM.sub("", raw).split(";")
    if len(parts) > _MAX_PARAMS:
        parts[_MAX_PARAMS - 1 :] = ["".join(parts[_MAX_PARAMS - 1 :])]
    for part in parts:
        digits = part.partition(":")[0][-16:]
        if digits and int(digits) % 65536 in _ALT_MODES:
            return True
    return False


class SequenceTracker:
    """Follows the output, chunk by chunk, in order."""

    __slots__ = ("_alternate", "_carry")

    def __init__(self) -> None:
        self._alternate = False
        self._carry = ""

    @property
    def alternate_screen(self) -> bool:
        """True while the alternate screen is shown."""
        return self._alternate

    def feed(self, text: str, c1_possible: bool) -> bool:
        """Take the next decoded chunk; True if it is plain text.

        Plain text holds no ESC or C1 control and does not finish a sequence
        begun earlier, so it only prints, with the pen it found, and moves the
        cursor forward, down and back to the left margin. ``c1_possible``
        False promises there is no C1 control (U+0080 to U+009F) in ``text``:
        the caller can tell from the UTF-8 bytes for free.
        """
        if self._carry:
            text = self._carry + text
            self._carry = ""
        elif "\x1b" not in text and (not c1_possible or _C1.search(text) is None):
            return True
        switch_at, alternate = -1, self._alternate
        if "?" in text:
            for match in _MODES.finditer(text):
                if _after_csi(text, match.start()) and _switches_screen(match.group(1)):
                    switch_at, alternate = match.start(), match.group(2) == "h"
        for match in _RESET.finditer(text):
            if match.start() > switch_at:
                switch_at, alternate = match.start(), False
        self._alternate = alternate
        start = max(text.rfind("\x1b"), text.rfind("\x9b"))
        if start >= 0 and len(text) - start <= _MAX_CARRY and _UNFINISHED.match(text, start):
            self._carry = text[start:]
        return False
