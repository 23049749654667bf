"""Per-peer limits (concurrent long waits, failed authentication) and connection limits.

Everything here is keyed by the peer's IP and bounded in size, so no amount
of outside traffic can make it grow without limit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import ClassVar

from wsh.errors import Kind, WshError

# A hub forwards many clients' waits to a backend over one connection, so a
# single peer may legitimately hold many; these caps stop runaway clients.
MAX_RACES_PER_PEER = 256
MAX_IDLE_WAITS_PER_PEER = 2048
MAX_LINKS_PER_PEER = 16
# Watches are served from state the server holds anyway; each costs its
# queue of shared events (see wsh/api/watch.py).
MAX_WATCHES_PER_PEER = 256
MAX_ATTACHES_PER_PEER = 256
# Failed authentications a peer may make per window before it is refused.
AUTH_FAILURES_ALLOWED = 10
AUTH_WINDOW_S = 30.0
# Peers remembered at most; the oldest are forgotten first.
MAX_TRACKED_PEERS = 10_000

# Connections: every one costs a descriptor, and so does every session (its
# PTY master and its pidfd, and a third for the slave while it starts).
# With descriptors exhausted the server cannot accept, start a session or
# even read /proc, so every call failed while 1,100 idle TCP connections
# were held against a soft limit of 1,024. Connections are capped below the
# open-file limit so that a reserve always remains for the sessions and for
# the server's own work (epoll, logs, config, links to backends).
DEFAULT_MAX_CONNECTIONS = 1024
FDS_PER_SESSION = 3
FDS_RESERVED = 128
MIN_MAX_CONNECTIONS = 16
# Stands for an infinite limit in the arithmetic below.
UNLIMITED_FDS = 1 << 20


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED_FDS, UNLIMITED_FDS
    # Linux refuses an infinite NOFILE; a finite hard limit is the norm.
    if soft < hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return soft, hard
    return soft, soft


def open_file_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return UNLIMITED_FDS if soft == resource.RLIM_INFINITY else soft


def fd_reserve(max_sessions: int) -> int:
    """Descriptors kept free of connections for sessions and the server itself."""
    return FDS_RESERVED + FDS_PER_SESSION * max_sessions


def default_max_connections(fd_limit: int, max_sessions: int) -> int:
    """The most connections that still leave the reserve free (at least a few)."""
    return max(
        MIN_MAX_CONNECTIONS, min(DEFAULT_MAX_CONNECTIONS, fd_limit - fd_reserve(max_sessions))
    )


def peer_key(peer: str) -> str:
    """The client's address without its port: ``ipv4:1.2.3.4:5678`` -> ``ipv4:1.2.3.4``."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer.split(":", 1)[0] or "unknown"


class StreamLimits:
    """Counts long-lived calls per peer and kind, refusing past each kind's cap."""

    CAPS: ClassVar[dict[str, int]] = {
        "RaceIdle": MAX_RACES_PER_PEER,
        "AwaitIdle": MAX_IDLE_WAITS_PER_PEER,
        "Link": MAX_LINKS_PER_PEER,
        "WatchSessions": MAX_WATCHES_PER_PEER,
        "Attach": MAX_ATTACHES_PER_PEER,
    }

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}

    def total(self, kind: str) -> int:
        """Calls of ``kind`` open right now, all peers together."""
        return sum(n for (_, k), n in self._open.items() if k == kind)

    @contextlib.contextmanager
    def hold(self, peer: str, kind: str) -> Iterator[None]:
        key = (peer_key(peer), kind)
        count = self._open.get(key, 0)
        cap = self.CAPS[kind]
        if count >= cap:
            raise WshError(
                Kind.RESOURCE_EXHAUSTED,
                "TOO_MANY_STREAMS",
                f"This client already has {count} {kind} calls open (the limit is {cap}); "
                "close some first.",
                {"kind": kind, "limit": str(cap)},
            )
        self._open[key] = count + 1
        try:
            yield
        finally:
            remaining = self._open[key] - 1
            if remaining:
                self._open[key] = remaining
            else:
                del self._open[key]  # nothing kept for peers with no open call


class AuthFailures:
    """Failed authentications per peer in a sliding window (approximated by decay)."""

    def __init__(self) -> None:
        self._peers: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        level, since = self._peers.get(key, (0.0, now))
        # Leaks AUTH_FAILURES_ALLOWED per window: a peer that stops failing
        # is forgiven within one window.
        return max(0.0, level - (now - since) * AUTH_FAILURES_ALLOWED / AUTH_WINDOW_S)

    def check(self, peer: str) -> None:
        """Refuse a peer that failed too often lately, whatever token it sends now."""
        key = peer_key(peer)
        if key in self._peers and self._level(key, time.monotonic()) >= AUTH_FAILURES_ALLOWED:
            raise WshError(
                Kind.RESOURCE_EXHAUSTED,
                "AUTH_RATE_LIMITED",
                f"Too many failed authentications from this address; wait up to "
                f"{AUTH_WINDOW_S:.0f}s and check the token.",
            )

    def failed(self, peer: str) -> None:
        key = peer_key(peer)
        now = time.monotonic()
        self._peers[key] = (self._level(key, now) + 1.0, now)
        self._peers.move_to_end(key)
        while len(self._peers) > MAX_TRACKED_PEERS:
            self._peers.popitem(last=False)


def _peer_address(peer: str) -> tuple[str, int] | None:
    """``ipv4:1.2.3.4:5678`` or ``ipv6:[::1]:5678`` as (IP, port); None for others."""
    if not peer.startswith(("ipv4:", "ipv6:")):
        return None
    host, _, port = peer[5:].rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
        return str(getattr(ip, "ipv4_mapped", None) or ip), int(port)
    except ValueError:
        return None


def shut_down_connection(peer: str) -> bool:
    """Shut down this process's TCP connection to ``peer`` (as ``context.peer()``
    names it); True if one was found.

    gRPC has no call that closes a connection from a handler. This finds the
    socket among the process's descriptors and shuts it down: gRPC then sees
    the peer gone and drops the connection and its calls as if it had left.
    Each descriptor is duplicated before it is looked at, so a socket closed
    and its number reused meanwhile cannot be mistaken for the peer's.
    Blocking (scans /proc): run it in a thread.
    """
    target = _peer_address(peer)
    if target is None:
        return False
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # closed meanwhile, or not a socket Python can use
        with sock:
            try:
                if _peer_address(_format_peer(sock.getpeername())) != target:
                    continue
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # listening, unix or already closed
            return True
    return False


def _format_peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
    return ""
