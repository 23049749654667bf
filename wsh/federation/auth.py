"""Tokens the hub presents to backends, and keeping them out of text."""

from __future__ import annotations

import re
from collections.abc import Iterable

from wsh.errors import invalid

REDACTED = "***"
# What an HTTP header can carry after "Bearer ": visible ASCII, no spaces.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def resolve_token(
    server_token: str | None, default_token: str | None, own_token: str | None
) -> str | None:
    """The token to present to a backend: its own, else the config's
    ``default_token``, else this server's own token; the first non-empty one
    wins. None means connect without a token."""
    for token in (server_token, default_token, own_token):
        if token:
            return token
    return None


def check_bearer_token(token: str) -> str:
    """A token to present to a backend must fit in a header, or no call could
    ever carry it. The message never quotes the token."""
    if not _TOKEN.fullmatch(token):
        raise invalid(
            "TOKEN_INVALID",
            "A backend token must be visible ASCII characters, without spaces or "
            "control characters.",
        )
    return token


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of every non-empty secret in ``text`` by ``***``.

    Run every error text through this before it reaches a log or a client:
    a backend or a library may echo a token back in an error.
    """
    # Mark every character inside any occurrence of any secret, then collapse
    # each marked run: overlapping secrets ("abcd", "cdef" in "abcdef") must
    # not leave a piece of one visible next to the other's "***".
    hidden = [False] * len(text)
    for secret in {s for s in secrets if s}:
        start = text.find(secret)
        while start != -1:
            hidden[start : start + len(secret)] = [True] * len(secret)
            start = text.find(secret, start + 1)
    if not any(hidden):
        return text
    out: list[str] = []
    for index, ch in enumerate(text):
        if not hidden[index]:
            out.append(ch)
        elif index == 0 or not hidden[index - 1]:
            out.append(REDACTED)
    return "".join(out)


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata carrying ``token`` as a Bearer credential, or none."""
    return (("authorization", f"Bearer {token}"),) if token else ()
