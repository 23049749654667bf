"""Who this server is: hostname, a fresh server_id per start, version, start time."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass, field

from wsh import __version__
from wsh.names import check_hostname


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    hostname: str
    server_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = __version__
    started_at: float = field(default_factory=time.time)


def resolve_hostname(configured: str | None) -> str:
    """The configured name (see :mod:`wsh.config`), else the system's name."""
    name = configured or socket.gethostname().split(".")[0] or "localhost"
    return check_hostname(name)
