"""Unit tests of the naming rules for sessions, tags and hostnames."""

from __future__ import annotations

import pytest

from wsh.names import is_valid_hostname, is_valid_session_name, is_valid_tag


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("build-1", True),
        ("a.b_c", True),
        ("名前", True),
        ("", False),
        ("a b", False),
        ("x" * 64, True),
        ("x" * 65, False),
        ("é" * 33, False),
        ("a/b", False),
        ("a\0", False),
    ],
)
def test_session_name_rule(name: str, ok: bool) -> None:
    assert is_valid_session_name(name) is ok
    assert is_valid_tag(name) is ok


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("hub", True),
        ("build-1.example", True),
        ("-bad", False),
        ("bad-", False),
        ("a..b", False),
        ("a_b", False),
        ("x" * 64, False),
        ("ü", False),
    ],
)
def test_hostname_rule(host: str, ok: bool) -> None:
    assert is_valid_hostname(host) is ok
