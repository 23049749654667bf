"""Token cascade, redaction and Bearer metadata."""

from __future__ import annotations

import pytest

from wsh.federation.auth import bearer_metadata, redact, resolve_token


@pytest.mark.parametrize(
    ("server", "default", "own", "expected"),
    [
        ("s", "d", "o", "s"),
        (None, "d", "o", "d"),
        ("", "d", "o", "d"),
        (None, None, "o", "o"),
        ("", "", "o", "o"),
        (None, "", None, None),
        (None, None, None, None),
        ("", "", "", None),
        ("s", None, None, "s"),
    ],
)
def test_resolve_token_first_non_empty_wins(
    server: str | None, default: str | None, own: str | None, expected: str | None
) -> None:
    assert resolve_token(server, default, own) == expected


def test_redact_every_occurrence_of_every_secret() -> None:
    text = "token abc123 failed; retry with abc123 or xyz789"
    assert redact(text, ["abc123", None, "", "xyz789"]) == (
        "token *** failed; retry with *** or ***"
    )


def test_redact_without_secrets_is_identity() -> None:
    assert redact("nothing here", []) == "nothing here"
    assert redact("nothing here", [None, ""]) == "nothing here"
    assert redact("nothing here", ["absent"]) == "nothing here"


def test_redact_secret_containing_another() -> None:
    assert redact("key=supersecret!", ["secret", "supersecret"]) == "key=***!"
    assert redact("key=supersecret!", ["supersecret", "secret"]) == "key=***!"


def test_redact_overlapping_secrets_leave_no_piece() -> None:
    assert redact("[abcdef]", ["abcd", "cdef"]) == "[***]"
    assert redact("aaaa", ["aaa"]) == "***"


def test_redact_adjacent_secrets() -> None:
    assert redact("abcxyz abc", ["abc", "xyz"]) == "*** ***"


def test_bearer_metadata() -> None:
    assert bearer_metadata("tok") == (("authorization", "Bearer tok"),)
    assert bearer_metadata(None) == ()
    assert bearer_metadata("") == ()
