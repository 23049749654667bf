"""The public description of a session, as the domain hands it to the API."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SessionState(enum.Enum):
    RUNNING = "running"
    EXITED = "exited"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A snapshot of one session; ``server`` is the owning server's hostname."""

    name: str
    server: str
    tags: tuple[str, ...]
    command: str
    pid: int
    rows: int
    cols: int
    state: SessionState
    exit_code: int | None
    generation: int
    created_at: float  # Unix time, seconds
    last_activity_ms: int
    cwd: str
    # Whether the foreground process group waited for input on the terminal
    # when last inspected, and its command name ("" if unknown or exited).
    ready: bool = False
    foreground: str = ""
