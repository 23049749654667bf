"""Styled text, and reading it out of pyavt lines quickly.

Walking a line's cells from Python costs a call per cell (a 200x50 screen took
5.7 ms that way). pyavt's ``str(line)`` instead has Rust render the whole
line at once as SGR-coded text, one ``ESC [ 0;...m`` per run of equal pens,
inside a Rust debug literal: ``Line("\\u{1b}[0;31;1mab\\u{1b}[0m c  ")``.
We keep that rendering (trimmed) as the compact form of a line that may
carry styles, and turn it into spans or plain text on demand.

What the rendering holds (pyavt 0.1.2, checked by the tests): a line that
wraps ends with an extra ``⏎``; wide characters appear once (their second
cell is skipped, as in ``Line.text``); every run starts with ``0`` then the
foreground (``30``-``37``, ``90``-``97``, ``38:5:n``, ``38:2:r:g:b``), the
background (the same at ``40``), then ``1`` bold or ``2`` faint, ``3``
italic, ``4`` underline, ``5`` blink, ``7`` inverse, ``9`` strikethrough. In
the text, Rust escapes ``\\`` and ``"`` with a backslash and unprintable or
combining characters as ``\\u{hex}``.

Trailing whitespace (``str.isspace``) is trimmed from plain lines and from a
last span drawn with the default pen.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# The public ``avt`` package re-exports Line without marking it for type
# checkers; the typed stubs live on the extension module itself.
from avt._avt import Line


@dataclass(frozen=True, slots=True)
class Color:
    """A colour: a palette index (0-255) or a 24-bit ``0xRRGGBB``; exactly one is set."""

    indexed: int | None = None
    rgb: int | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text drawn with one pen; ``None`` colours are the terminal's defaults."""

    text: str
    fg: Color | None = None
    bg: Color | None = None
    bold: bool = False
    italic: bool = False
    underline: bool = False
    inverse: bool = False
    faint: bool = False
    strikethrough: bool = False
    blink: bool = False


StyledLine = tuple[Span, ...]
"""One screen line as spans, left to right."""

# The pen part of a Span: everything but the text, in field order.
_Pen = tuple[Color | None, Color | None, bool, bool, bool, bool, bool, bool, bool]
_PEN_FIELDS = (
    "fg",
    "bg",
    "bold",
    "italic",
    "underline",
    "inverse",
    "faint",
    "strikethrough",
    "blink",
)

_SGR = "\\u{1b}["  # how ESC [ reads inside the debug literal
# Appended to the rendering of a line that wraps onto the next; a cell can
# hold the same character, so only one more than the text ends with counts.
_WRAPPED = "\u23ce"
_DEFAULT_SGR = _SGR + "0m"
# Rust never leaves a raw NUL in a debug literal (it writes \0), so NUL can
# stand in for an escaped backslash while we split on the escapes that remain.
_BACKSLASH = "\x00"
_SGR_RUN = re.compile(r"\\u\{1b\}\[[0-9;:]*m")
_ESCAPE = re.compile(r"\\(?:u\{([0-9a-f]{1,6})\}|(.))")
# SGR code -> position in (bold, italic, underline, inverse, faint, strikethrough, blink)
_FLAGS = {"1": 0, "3": 1, "4": 2, "7": 3, "2": 4, "9": 5, "5": 6}

_INDEXED = tuple(Color(indexed=i) for i in range(256))
_PLAIN_PEN: _Pen = (None, None, False, False, False, False, False, False, False)
# Bounded caches shared by all screens: pens and colours by their SGR
# parameters, cleared when full (they refill fast); styled lines by their
# compact form, oldest out first, as freeing thousands of spans at once
# would stall the view that did it.
_CACHE_MAX = 4096
_pens: dict[str, _Pen] = {}
_colors: dict[str, Color] = {}  # by "5:n" or "2:r:g:b"
_lines: OrderedDict[Dump, StyledLine] = OrderedDict()


class Dump(str):
    """A line in its compact form, the trimmed SGR rendering (as opposed to plain text)."""

    __slots__ = ()


def dump(line: Line) -> Dump:
    """The compact form of a line, without trailing default blanks."""
    body = str(line)[6:-2]
    if body.endswith(_WRAPPED) and _ending(body) > _ending(line.text):
        body = body[:-1]
    if body.endswith(" "):
        last = _last_sgr(body)
        if body.startswith(_DEFAULT_SGR, last):
            body = body.rstrip(" ")
            if len(body) == last + len(_DEFAULT_SGR):
                body = body[:last]
    return Dump(body)


def _ending(text: str) -> int:
    return len(text) - len(text.rstrip(_WRAPPED))


def _last_sgr(body: str) -> int:
    """Where the last pen change starts; text that merely looks like one has its
    backslash escaped, i.e. an odd run of backslashes before it."""
    at = body.rfind(_SGR)
    while at > 0:
        start = at
        while start > 0 and body[start - 1] == "\\":
            start -= 1
        if (at - start) % 2 == 0:
            break
        at = body.rfind(_SGR, 0, at)
    return at


def plain(line: str) -> str:
    """The text of a line kept as plain text or as a Dump, trailing blanks trimmed."""
    if not isinstance(line, Dump) or not line:
        return line
    body: str = line
    protected = "\\\\" in body
    if protected:
        body = body.replace("\\\\", _BACKSLASH)
    text = _SGR_RUN.sub("", body)
    if "\\" in text:
        text = _ESCAPE.sub(_unescape_one, text)
    if protected:
        text = text.replace(_BACKSLASH, "\\")
    return text.rstrip()


def styled(line: str) -> StyledLine:
    """The spans of a line kept as plain text or as a Dump."""
    if not isinstance(line, Dump):
        return (_new_span(line, _PLAIN_PEN),) if line else ()
    cached = _lines.get(line)
    if cached is not None:
        return cached
    body: str = line
    protected = "\\\\" in body
    if protected:
        body = body.replace("\\\\", _BACKSLASH)
    pen_params: list[str] = []
    texts: list[str] = []
    # pyavt already merges cells with equal pens into one run.
    for run in body.split(_SGR)[1:]:
        params, _, text = run.partition("m")
        if "\\" in text:
            text = _ESCAPE.sub(_unescape_one, text)
        if protected:
            text = text.replace(_BACKSLASH, "\\")
        pen_params.append(params)
        texts.append(text)
    if pen_params and pen_params[-1] == "0":
        texts[-1] = texts[-1].rstrip()
        if not texts[-1]:
            del pen_params[-1], texts[-1]
    known = _pens.get
    pens = [known(params) or _learn_pen(params) for params in pen_params]
    spans = tuple(map(_new_span, texts, pens))
    if len(_lines) >= _CACHE_MAX:
        _lines.popitem(last=False)
    _lines[line] = spans
    return spans


def _unescape_one(match: re.Match[str]) -> str:
    code, char = match.groups()
    if code is not None:
        return chr(int(code, 16))
    return char  # cells hold no controls: only \" is escaped this way


def _learn_pen(params: str) -> _Pen:
    pen = _parse_pen(params)
    if len(_pens) >= _CACHE_MAX:
        _pens.clear()
    _pens[params] = pen
    return pen


def _span_builder() -> Callable[[str, _Pen], Span]:
    """A Span constructor twice as fast as ``Span(...)``, for building screens.

    The frozen dataclass's ``__init__`` goes through ``object.__setattr__``
    once per field; here each slot is set through its descriptor directly.
    """
    fields = tuple(field.name for field in dataclasses.fields(Span))
    if fields != ("text", *_PEN_FIELDS):
        raise RuntimeError(f"Span fields changed to {fields}; update _PEN_FIELDS")
    new = object.__new__
    set_text, set_fg, set_bg, set_bold, set_italic, set_underline, set_inverse = (
        getattr(Span, name).__set__ for name in fields[:7]
    )
    set_faint, set_strikethrough, set_blink = (getattr(Span, name).__set__ for name in fields[7:])

    def build(text: str, pen: _Pen) -> Span:
        span: Span = new(Span)
        fg, bg, bold, italic, underline, inverse, faint, strikethrough, blink = pen
        set_text(span, text)
        set_fg(span, fg)
        set_bg(span, bg)
        set_bold(span, bold)
        set_italic(span, italic)
        set_underline(span, underline)
        set_inverse(span, inverse)
        set_faint(span, faint)
        set_strikethrough(span, strikethrough)
        set_blink(span, blink)
        return span

    return build


_new_span = _span_builder()


def _parse_pen(params: str) -> _Pen:
    fg: Color | None = None
    bg: Color | None = None
    flags = [False] * 7
    for param in params.split(";")[1:]:
        flag = _FLAGS.get(param)
        if flag is not None:
            flags[flag] = True
            continue
        if param[2:3] == ":":  # 38:5:n, 38:2:r:g:b and the same at 48
            color = _colors.get(param[3:]) or _learn_color(param[3:])
        else:
            # 30-37/40-47 are palette 0-7, 90-97/100-107 are palette 8-15.
            number = int(param)
            color = _INDEXED[number % 10 + (8 if number >= 90 else 0)]
        if param[0] in "39":  # 30-38 and 90-97 colour the text, the rest its background
            fg = color
        else:
            bg = color
    bold, italic, underline, inverse, faint, strikethrough, blink = flags
    return (fg, bg, bold, italic, underline, inverse, faint, strikethrough, blink)


def _learn_color(spec: str) -> Color:
    kind, _, values = spec.partition(":")
    if kind == "5":
        color = _INDEXED[int(values)]
    else:
        red, green, blue = map(int, values.split(":"))
        color = Color(rgb=red << 16 | green << 8 | blue)
    if len(_colors) >= _CACHE_MAX:
        _colors.clear()
    _colors[spec] = color
    return color
