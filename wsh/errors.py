"""Domain errors: what went wrong, as a stable reason and a message a person can act on.

The domain raises these; ``wsh.api.status`` maps them to gRPC status codes with
a ``google.rpc.ErrorInfo`` detail. Nothing here knows about gRPC.
"""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    """Error classes, one per gRPC status code the domain can produce."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"


class WshError(Exception):
    """An error with a stable UPPER_SNAKE ``reason`` and a human ``message``."""

    def __init__(
        self,
        kind: Kind,
        reason: str,
        message: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})

    def __repr__(self) -> str:
        return f"WshError({self.kind.value}, {self.reason}, {self.message!r})"


def shorten(value: str, limit: int = 128) -> str:
    """Cap a user-supplied value quoted in an error message."""
    return value if len(value) <= limit else value[:limit] + "..."


def invalid(reason: str, message: str, **metadata: str) -> WshError:
    return WshError(Kind.INVALID_ARGUMENT, reason, message, metadata)


def not_found(reason: str, message: str, **metadata: str) -> WshError:
    return WshError(Kind.NOT_FOUND, reason, message, metadata)


def session_not_found(name: str) -> WshError:
    return not_found(
        "SESSION_NOT_FOUND", f"Session {shorten(name)!r} not found.", session=shorten(name)
    )
