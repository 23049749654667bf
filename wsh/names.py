"""Rules for session names, tags and hostnames, shared by clients' and backends' input."""

from __future__ import annotations

import re

from wsh.errors import invalid, shorten

MAX_NAME_BYTES = 64
# Per session. Hubs refuse a backend's inventory holding a session with more,
# so a server must never accept more from its own clients.
MAX_TAGS = 64
MAX_HOSTNAME_LEN = 253
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _is_name(value: str) -> bool:
    if not value or len(value.encode("utf-8")) > MAX_NAME_BYTES:
        return False
    return all(ch.isalnum() or ch in "-_." for ch in value)


def is_valid_session_name(name: str) -> bool:
    """1-64 UTF-8 bytes of Unicode letters/digits and ``-``, ``_``, ``.``."""
    return _is_name(name)


def is_valid_tag(tag: str) -> bool:
    """Tags follow the session-name rule."""
    return _is_name(tag)


def is_valid_hostname(hostname: str) -> bool:
    """RFC 952/1123: at most 253 characters, dot-separated labels of 1-63
    ASCII letters, digits and '-', not starting or ending with '-'."""
    if not hostname or len(hostname) > MAX_HOSTNAME_LEN:
        return False
    return all(_HOST_LABEL.match(label) for label in hostname.split("."))


def check_session_name(name: str) -> str:
    if not is_valid_session_name(name):
        raise invalid(
            "INVALID_SESSION_NAME",
            f"Invalid session name {shorten(name)!r}: use 1-64 bytes of letters, digits, "
            "'-', '_' or '.'.",
            name=shorten(name),
        )
    return name


def check_tags(tags: list[str] | tuple[str, ...]) -> list[str]:
    for tag in tags:
        if not is_valid_tag(tag):
            raise invalid(
                "INVALID_TAG",
                f"Invalid tag {shorten(tag)!r}: use 1-64 bytes of letters, digits, "
                "'-', '_' or '.'.",
                tag=shorten(tag),
            )
    return sorted(set(tags))


def check_tag_count(tags: frozenset[str]) -> frozenset[str]:
    """A session's whole tag set: at most ``MAX_TAGS`` tags."""
    if len(tags) > MAX_TAGS:
        raise invalid(
            "TOO_MANY_TAGS",
            f"A session can have at most {MAX_TAGS} tags; this would give it {len(tags)}.",
            limit=str(MAX_TAGS),
        )
    return tags


def check_hostname(hostname: str) -> str:
    if not is_valid_hostname(hostname):
        raise invalid(
            "INVALID_HOSTNAME",
            f"Invalid hostname {shorten(hostname)!r}: use RFC 1123 labels of letters, "
            "digits and '-', at most 253 characters.",
            hostname=shorten(hostname),
        )
    return hostname
