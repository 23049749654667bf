"""The registry of backends: who they are, how healthy, what sessions they hold.

The registry is plain state plus change notification. The Link connections
(``link.py``) write into it; routing and cluster-wide races read it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from wsh.errors import Kind, WshError, session_not_found, shorten
from wsh.federation.address import BackendAddress
from wsh.sessions.activity import MAX_MS
from wsh.sessions.changes import ChangeKind, SessionChange, removed
from wsh.sessions.info import SessionInfo

log = logging.getLogger(__name__)


class Health(enum.Enum):
    HEALTHY = "healthy"
    CONNECTING = "connecting"
    UNAVAILABLE = "unavailable"
    REJECTED = "rejected"


@dataclass(eq=False)
class Backend:
    """One registered backend, as this hub knows it."""

    address: BackendAddress
    token: str | None = field(default=None, repr=False)
    # The name as the backend last presented it (or as owned, until it does).
    hostname: str = ""
    # The name this address owns in the cluster: from its config entry, else
    # learned on its first link. No other backend may present it.
    owned: str = ""
    server_id: str = ""
    version: str = ""
    health: Health = Health.CONNECTING
    last_error: str = ""
    latency_ms: float = 0.0
    # The backend's sessions as its Link reported them, with the monotonic
    # time of each one's last activity (heartbeats keep both fresh).
    sessions: dict[str, SessionInfo] = field(default_factory=dict)
    active_at: dict[str, float] = field(default_factory=dict)
    # Sessions the backend last said had settled (SessionTransition); one
    # that is not here is active, or new and not settled yet.
    quiet: set[str] = field(default_factory=set)

    @property
    def healthy(self) -> bool:
        return self.health is Health.HEALTHY

    def sessions_matching(self, tags: frozenset[str]) -> Iterator[SessionInfo]:
        return (s for s in self.sessions.values() if not tags or not tags.isdisjoint(s.tags))

    def upsert(self, info: SessionInfo, previous_name: str = "") -> None:
        if previous_name and previous_name != info.name:
            if previous_name in self.quiet:
                self.quiet.add(info.name)
            self.remove(previous_name)
        self.sessions[info.name] = info
        self.active_at[info.name] = time.monotonic() - info.last_activity_ms / 1000

    def remove(self, name: str) -> None:
        self.sessions.pop(name, None)
        self.active_at.pop(name, None)
        self.quiet.discard(name)

    def clear_sessions(self) -> None:
        self.sessions.clear()
        self.active_at.clear()
        self.quiet.clear()

    def transition(self, name: str, generation: int, quiet: bool, quiet_ms: int) -> bool:
        """Session ``name`` settled (``quiet``, ``quiet_ms`` ago) or became
        active at ``generation``; False if that tells nothing new (an unknown
        name, or older than what is known)."""
        info = self.sessions.get(name)
        if info is None or generation < info.generation:
            return False
        if generation != info.generation:
            self.sessions[name] = dataclasses.replace(info, generation=generation)
        if quiet:
            self.quiet.add(name)
            self.active_at[name] = time.monotonic() - quiet_ms / 1000
        else:
            self.quiet.discard(name)
            self.active_at[name] = time.monotonic()
        return True

    def record_activity(
        self, name: str, generation: int, idle_ms: int, ready: bool, foreground: str
    ) -> None:
        info = self.sessions.get(name)
        if info is not None and generation >= info.generation:
            self.sessions[name] = dataclasses.replace(
                info, generation=generation, ready=ready, foreground=foreground
            )
            self.active_at[name] = time.monotonic() - idle_ms / 1000

    def idle_ms(self, name: str, now: float) -> int:
        """Milliseconds since the session's last activity, as of ``now`` (monotonic)."""
        return min(MAX_MS, max(0, int((now - self.active_at[name]) * 1000)))


class Changes:
    """A counter that waiters can wait on: "something in the registry changed"."""

    def __init__(self) -> None:
        self.version = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def bump(self) -> None:
        self.version += 1
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait(self, seen: int) -> int:
        """Return the new version once it differs from ``seen``."""
        while self.version == seen:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(fut)
            try:
                await fut
            finally:
                self._waiters.discard(fut)
        return self.version


class ServerChangeKind(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    HEALTH_CHANGED = "health_changed"


@dataclass(frozen=True, slots=True)
class ServerChange:
    """A backend registered, deregistered, or whose health changed; ``backend``
    is as it is now."""

    kind: ServerChangeKind
    backend: Backend


RegistryEvent = SessionChange | ServerChange
RegistryListener = Callable[[RegistryEvent], None]


def server_not_found(hostname: str) -> WshError:
    return WshError(
        Kind.NOT_FOUND,
        "SERVER_NOT_FOUND",
        f"No server named {shorten(hostname)!r} in this cluster; `wsh servers` lists them.",
        {"server": shorten(hostname)},
    )


class Registry:
    """Backends in registration order, looked up by address or hostname."""

    def __init__(self, own_hostname: str) -> None:
        self.own_hostname = own_hostname
        self._backends: dict[str, Backend] = {}  # canonical address -> backend
        # Inventory and health changes, for those that wait for one.
        self.changes = Changes()
        self._watchers: list[RegistryListener] = []

    # -- events for watchers and races -----------------------------------------

    def subscribe(self, listener: RegistryListener) -> Callable[[], None]:
        """Call ``listener`` with what each change was (created, killed, a
        backend's health...), as it happens; returns an unsubscribe."""
        self._watchers.append(listener)
        return lambda: self._watchers.remove(listener)

    def publish(self, event: RegistryEvent) -> None:
        for listener in list(self._watchers):
            try:
                listener(event)
            except Exception:
                log.exception("registry event listener failed")

    def forget_sessions(self, backend: Backend) -> None:
        """Drop a backend's inventory, telling watchers each session is gone."""
        if self._watchers:
            for info in list(backend.sessions.values()):
                self.publish(removed(info, ChangeKind.REMOVED))
        backend.clear_sessions()

    def __iter__(self) -> Iterator[Backend]:
        return iter(list(self._backends.values()))

    def __len__(self) -> int:
        return len(self._backends)

    def healthy(self) -> list[Backend]:
        return [b for b in self._backends.values() if b.healthy]

    def by_address(self, address: BackendAddress) -> Backend | None:
        return self._backends.get(address.url)

    def by_hostname(self, hostname: str) -> Backend | None:
        for backend in self._backends.values():
            if backend.hostname == hostname and backend.health is not Health.REJECTED:
                return backend
        return None

    def add(self, backend: Backend) -> None:
        if backend.address.url in self._backends:
            raise WshError(
                Kind.ALREADY_EXISTS,
                "SERVER_ALREADY_REGISTERED",
                f"Backend {backend.address.url} is already registered.",
                {"address": backend.address.url},
            )
        self._backends[backend.address.url] = backend
        self.changes.bump()
        self.publish(ServerChange(ServerChangeKind.ADDED, backend))

    def remove(self, backend: Backend) -> None:
        if self._backends.get(backend.address.url) is backend:
            del self._backends[backend.address.url]
            self.forget_sessions(backend)
            self.changes.bump()
            self.publish(ServerChange(ServerChangeKind.REMOVED, backend))

    def find(self, hostname: str = "", address: str = "") -> Backend:
        """A backend by hostname, or by address while its hostname is unknown."""
        if hostname:
            for backend in self._backends.values():
                if backend.hostname == hostname:
                    return backend
        if address:
            for backend in self._backends.values():
                if address in (backend.address.url, str(backend.address)):
                    return backend
        raise server_not_found(hostname or address)

    def hostname_holder(self, hostname: str, asking: Backend) -> str | None:
        """Who already holds ``hostname``: "this hub", a backend address, or None.

        A backend owns its name while it is down too: one that is unreachable
        when the hub starts must not lose its name, and its calls, to whoever
        claims the name first.
        """
        if hostname == self.own_hostname:
            return "this hub"
        for backend in self._backends.values():
            if backend is not asking and (
                backend.owned == hostname
                or (backend.hostname == hostname and backend.health is not Health.REJECTED)
            ):
                return backend.address.url
        return None

    def owner_of(self, hostname: str) -> Backend | None:
        """The backend that owns ``hostname``, if any."""
        for backend in self._backends.values():
            if backend.owned == hostname:
                return backend
        return None

    def route(self, server: str) -> Backend | None:
        """The backend that owns ``server``; None means this server itself."""
        if not server or server == self.own_hostname:
            return None
        backend = self.by_hostname(server)
        if backend is None:
            raise server_not_found(server)
        _check_healthy(backend)
        return backend

    def holders(self, name: str) -> list[Backend]:
        """Backends whose last known inventory holds a session called ``name``."""
        return [
            b
            for b in self._backends.values()
            if name in b.sessions and b.health is not Health.REJECTED
        ]

    def route_name(self, name: str) -> Backend:
        """The one backend holding session ``name``, for a call that named no server.

        Several holders make the name ambiguous rather than letting one of
        them win: a backend that claims a name later must never take a
        session over from another server.
        """
        holders = self.holders(name)
        if not holders:
            raise session_not_found(name)
        if len(holders) > 1:
            servers = sorted(b.hostname for b in holders)
            listed = shorten(", ".join(servers), 512)
            raise WshError(
                Kind.FAILED_PRECONDITION,
                "SESSION_AMBIGUOUS",
                f"Session {shorten(name)!r} exists on several servers ({listed}); "
                "pass `server` to say which.",
                {"session": shorten(name), "servers": listed},
            )
        _check_healthy(holders[0])
        return holders[0]


def _check_healthy(backend: Backend) -> None:
    if not backend.healthy:
        server = backend.hostname
        raise WshError(
            Kind.UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            f"Server {server!r} is {backend.health.value}"
            + (f": {backend.last_error}" if backend.last_error else "")
            + ".",
            {"server": server, "health": backend.health.value},
        )
