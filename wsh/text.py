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


def printable(value: str, limit: int = 128) -> str:
    """Cap ``value`` and escape every non-printable character.

    Log lines and terminals must never receive raw control bytes (escape
    sequences, bidi overrides) that a peer chose; backslashes are escaped too so
    the escaped form cannot be confused with the original text.
    """
    return "".join(
        "\\\\" if ch == "\\" else ch if ch.isprintable() else _escape(ch)
        for ch in shorten(value, limit)
    )


def quote(value: str, limit: int = 128) -> str:
    """``printable(value)`` in single quotes, for quoting inside a message."""
    return f"'{printable(value, limit)}'"
