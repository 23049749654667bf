"""Input typed on the command line: C-style escapes turned into the bytes to send."""

from __future__ import annotations

from string import hexdigits

_ESCAPES = {
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "e": b"\x1b",
    "\\": b"\\",
    "0": b"\0",
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "v": b"\v",
}
_HEX_WIDTH = {"x": 2, "u": 4}


def raw_bytes(text: str) -> bytes:
    """The bytes the user typed: arguments that were not valid UTF-8 reach
    Python as surrogate escapes, which this gives back as they were."""
    return text.encode("utf-8", "surrogateescape")


def decode_escapes(text: str) -> bytes:
    """Turn C-style escapes in ``text`` into the bytes to type.

    ``\\n \\r \\t \\e \\\\ \\0 \\a \\b \\f \\v`` are single bytes, ``\\xNN`` is
    the byte NN (``\\x03`` is Ctrl-C), ``\\uNNNN`` is that character in UTF-8.
    Anything else after a backslash raises ``ValueError``.
    """
    out = bytearray()
    pos = 0
    while pos < len(text):
        slash = text.find("\\", pos)
        if slash < 0:
            out += raw_bytes(text[pos:])
            break
        out += raw_bytes(text[pos:slash])
        kind = text[slash + 1 : slash + 2]
        if kind in _ESCAPES:
            out += _ESCAPES[kind]
            pos = slash + 2
        elif kind in _HEX_WIDTH:
            width = _HEX_WIDTH[kind]
            digits = text[slash + 2 : slash + 2 + width]
            if len(digits) != width or not all(c in hexdigits for c in digits):
                raise ValueError(f"\\{kind} at position {slash} needs {width} hex digits")
            value = int(digits, 16)
            if kind == "x":
                out.append(value)
            else:
                try:
                    out += chr(value).encode()
                except UnicodeEncodeError:
                    raise ValueError(
                        f"\\u{digits} at position {slash} is a lone surrogate"
                    ) from None
            pos = slash + 2 + width
        elif not kind:
            raise ValueError("trailing backslash; write \\\\ for a literal one")
        else:
            raise ValueError(
                f"unknown escape \\{kind} at position {slash}; "
                "use --no-escapes to send text verbatim"
            )
    return bytes(out)
