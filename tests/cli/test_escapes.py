"""Unit tests of ``wsh`` input escapes."""

from __future__ import annotations

import pytest

from wsh.cli import main
from wsh.cli.escapes import decode_escapes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", b"plain text"),
        (r"ls -l\n", b"ls -l\n"),
        (r"\r\t\e\\\0", b"\r\t\x1b\\\x00"),
        (r"\a\b\f\v", b"\x07\x08\x0c\x0b"),
        (r"\x03", b"\x03"),
        (r"\x1b[A\xff", b"\x1b[A\xff"),
        (r"\u00e9\u4e2d", "é中".encode()),
        ("é", "é".encode()),
        (r"a\\nb", b"a\\nb"),
        (r"\x41BC", b"ABC"),
        ("", b""),
    ],
)
def test_decode_escapes(text: str, expected: bytes) -> None:
    assert decode_escapes(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (r"\q", "unknown escape"),
        ("abc\\", "trailing backslash"),
        (r"\x3", "2 hex digits"),
        (r"\xZZ", "2 hex digits"),
        (r"\x+1", "2 hex digits"),
        (r"\u12", "4 hex digits"),
        (r"\ud800", "surrogate"),
    ],
)
def test_decode_escapes_rejects(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        decode_escapes(text)


def test_undecodable_argument_bytes_pass_through() -> None:
    # How Python hands over an argv byte that is not UTF-8.
    assert decode_escapes(b"\xff\n".decode("utf-8", "surrogateescape")) == b"\xff\n"


def test_invalid_escape_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Exits before any call: the address has nothing listening.
    assert main(["--addr", "127.0.0.1:9", "send", "s", r"oops\q"]) == 2
    assert r"unknown escape \q" in capsys.readouterr().err
