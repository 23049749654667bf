"""Quoting untrusted text (from a backend, a config file or a client) in messages."""

from __future__ import annotations

from wsh.errors import shorten


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


# C0, DEL and C1 controls: a terminal obeys them (cursor moves, OSC clipboard
# writes) instead of showing them.
_CONTROLS = {c: "\ufffd" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def printable(value: str, limit: int | None = 128, *, terminal: bool = False) -> str:
    """``value`` capped at ``limit`` characters (None: whole), safe to log or print.

    Log lines must never receive raw control bytes (escape sequences, bidi
    overrides) that a peer chose, nor a terminal one it would obey. By
    default every non-printable character is escaped (``\\x1b``) and backslashes too, so a
    log shows exactly what was sent and the escaped form cannot be confused
    with the original text. With ``terminal`` (the CLI's tables and screens),
    each C0, DEL or C1 control becomes one U+FFFD instead: columns keep their
    width, and what a terminal draws without obeying (wide and combining
    characters, joiners, backslashes) stays as it is.
    """
    text = value if limit is None else shorten(value, limit)
    if terminal:
        return text.translate(_CONTROLS)
    return "".join("\\\\" if ch == "\\" else ch if ch.isprintable() else _escape(ch) for ch in text)


def quote(value: str, limit: int = 128) -> str:
    """``printable(value)`` in single quotes, for quoting inside a message."""
    return f"'{printable(value, limit)}'"
