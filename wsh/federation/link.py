"""The hub's end of one backend: its gRPC channel and the Link stream over it.

A ``BackendLink`` owns one channel to a backend, keeps a Link stream open on
it (identity, inventory, heartbeats), turns what it learns into registry
state and reconnects with capped, jittered exponential backoff. Session
calls for the backend go over the same channel through ``hub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc

from wsh import convert
from wsh.channels import PrefixedChannel
from wsh.defaults import LINK_HANDSHAKE_TIMEOUT_S, MAX_MESSAGE_BYTES
from wsh.errors import Kind, WshError
from wsh.federation import sanitize
from wsh.federation.auth import bearer_metadata, redact
from wsh.federation.ip_access import IpAccess
from wsh.federation.registry import Backend, Health, Registry, ServerChange, ServerChangeKind
from wsh.identity import ServerIdentity
from wsh.sessions import changes
from wsh.sessions.changes import ChangeKind
from wsh.text import printable
from wsh.v1 import backend_pb2, backend_pb2_grpc, hub_pb2_grpc

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# Silence longer than this on the Link stream marks the backend UNAVAILABLE.
HEARTBEAT_MISS_S = 3.0
BACKOFF_INITIAL_S = 0.1
BACKOFF_CAP_S = 1.0
# A backend that has failed this many times in a row since it was last
# healthy (about 5 s of retries) is probably gone for a while: from then on
# the backoff doubles up to SLOW_BACKOFF_CAP_S. Retrying every second, 494
# unreachable backends kept an idle hub at 51% of a core. A backend that
# drops out of HEALTHY starts again from the fast schedule, so failure
# detection and a quick restart are not slowed down.
FAST_FAILURES = 8
SLOW_BACKOFF_CAP_S = 30.0
# A refused token will not fix itself in a second; retry it more slowly.
AUTH_BACKOFF_S = 5.0
# A backend refused for its hostname is asked again this often: the backend
# that held the name may be removed, or the backend renamed back.
REJECTED_RETRY_S = 5.0
# last_error is shown by `wsh servers` and logged: enough for a reason.
MAX_ERROR_LEN = 512

# HTTP/2 keepalive notices a silent partition in seconds; without it a cut
# link goes unnoticed for as long as TCP retransmits. gRPC's own reconnect
# backoff starts as short as ours (a restarted backend is found at once) but
# grows to our slow cap: a channel in TRANSIENT_FAILURE keeps reconnecting on
# its own, and capped at 1 s, 60 unreachable backends held an idle hub at 4%
# of a core (2% capped at 30 s; 0.3% once settled, bench/registrations.py).
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 1_000),
    ("grpc.keepalive_timeout_ms", 1_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", int(SLOW_BACKOFF_CAP_S * 1000)),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 0),
)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Trust roots and client certificate for ``https://`` backends."""

    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """Raises ``WshError(FAILED_PRECONDITION, "TLS_INVALID")`` naming a file
        that cannot be read."""

        def read(path: Path | None, setting: str) -> bytes | None:
            if path is None:
                return None
            try:
                return path.read_bytes()
            except OSError as exc:
                raise WshError(
                    Kind.FAILED_PRECONDITION,
                    "TLS_INVALID",
                    f"Cannot read the config's [tls] {setting} {path}: "
                    f"{exc.strerror or exc}; fix it, then reload the config.",
                    {"path": str(path)},
                ) from None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file, "ca_file"),
            private_key=read(self.client_key, "client_key"),
            certificate_chain=read(self.client_cert, "client_cert"),
        )


class _Rejected(Exception):
    """The backend cannot be part of this cluster as it is: for ever (a
    self-loop) or until something changes (``retry``: its name is taken)."""

    def __init__(self, retry: bool) -> None:
        super().__init__()
        self.retry = retry


class _LinkBroken(Exception):
    pass


def describe_rpc_error(err: grpc.aio.AioRpcError, token: str | None = None) -> str:
    """A failed call to a backend as one printable line, without ``token``.

    The details are the backend's (or a proxy's) words: they may hold escape
    sequences, newlines that would forge log lines, or the token echoed back.
    """
    code = err.code()
    details = printable(redact(err.details() or code.name, [token]), MAX_ERROR_LEN)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return f"authentication failed ({code.name}): {details}"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return f"not a wsh server, or a path prefix is wrong ({details})"
    return f"{code.name}: {details}"


def backoff_s(failures: int) -> float:
    """How long to wait before the next try after ``failures`` failures in a
    row (jitter not included)."""
    if failures <= FAST_FAILURES:
        return min(BACKOFF_CAP_S, BACKOFF_INITIAL_S * 2.0 ** (failures - 1))
    return min(SLOW_BACKOFF_CAP_S, BACKOFF_CAP_S * 2.0 ** (failures - FAST_FAILURES))


class BackendLink:
    """One backend's channel and the task that keeps its Link stream alive."""

    def __init__(
        self,
        backend: Backend,
        registry: Registry,
        identity: ServerIdentity,
        ip_access: Callable[[], IpAccess],
        tls: TlsFiles,
        on_owned: Callable[[Backend], None] = lambda _backend: None,
    ) -> None:
        self.backend = backend
        self._registry = registry
        self._on_owned = on_owned
        self._identity = identity
        self._ip_access = ip_access
        address = backend.address
        if address.tls:
            self._channel = grpc.aio.secure_channel(
                address.grpc_target, tls.credentials(), options=CHANNEL_OPTIONS
            )
        else:
            self._channel = grpc.aio.insecure_channel(address.grpc_target, options=CHANNEL_OPTIONS)
        routed = cast(grpc.aio.Channel, PrefixedChannel(self._channel, address.path_prefix))
        self.hub = hub_pb2_grpc.HubServiceStub(routed)
        self._link = backend_pb2_grpc.BackendServiceStub(routed)
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self._sent_at: dict[int, float] = {}

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer_metadata(self.backend.token)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"link-{self.backend.address.url}"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._channel.close(grace=None)

    # -- state ----------------------------------------------------------------

    def _set(self, health: Health, error: str = "") -> None:
        backend = self.backend
        # A backend that is down keeps its last inventory (hidden from lists
        # and races) so that a call naming one of its sessions is told the
        # server is unavailable, and no other backend can claim the name.
        if health is Health.REJECTED:
            self._registry.forget_sessions(backend)
        error = redact(error, [backend.token])
        # Our own messages quote what they cite already; anything that still
        # holds a control character came from a peer unquoted.
        if not error.isprintable() or len(error) > MAX_ERROR_LEN:
            error = printable(error, MAX_ERROR_LEN)
        if backend.health is health and backend.last_error == error:
            return
        if health is not backend.health:
            log.info(
                "backend %s (%s): %s -> %s%s",
                backend.hostname or "?",
                backend.address.url,
                backend.health.value,
                health.value,
                f": {error}" if error else "",
            )
        changed = backend.health is not health
        backend.health = health
        backend.last_error = error
        self._registry.changes.bump()
        if changed:
            self._registry.publish(ServerChange(ServerChangeKind.HEALTH_CHANGED, backend))

    # -- the loop -------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            delay_floor = 0.0
            try:
                await self._session()
                error = "link closed by the backend"
            except _Rejected as rejected:
                if not rejected.retry:
                    return
                failures += 1
                await asyncio.sleep(
                    max(REJECTED_RETRY_S, backoff_s(failures)) * random.uniform(1.0, 1.5)
                )
                continue
            except WshError as err:
                error = err.message
            except grpc.aio.AioRpcError as err:
                error = describe_rpc_error(err, self.backend.token)
                if err.code() in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                ):
                    delay_floor = AUTH_BACKOFF_S
            except (TimeoutError, _LinkBroken) as exc:
                error = str(exc) or "no heartbeat from the backend"
            if self.backend.health is Health.HEALTHY:
                failures = 0
            self._set(Health.UNAVAILABLE, error)
            failures += 1
            await asyncio.sleep(max(delay_floor, backoff_s(failures) * random.uniform(0.5, 1.0)))

    async def _session(self) -> None:
        """One Link stream from handshake to its end."""
        backend = self.backend
        # Every (re)connect checks the address again: a DNS change must not
        # move a backend into a blocked range.
        await self._ip_access().check_address(backend.address)
        # Requests are written on the call as they come (heartbeats).
        call = self._link.Link(metadata=self.metadata)  # type: ignore[call-arg]
        try:
            ident = self._identity
            await call.write(
                backend_pb2.LinkRequest(
                    identity=backend_pb2.Identity(
                        hostname=ident.hostname, server_id=ident.server_id, version=ident.version
                    )
                )
            )
            first = await self._read(call, LINK_HANDSHAKE_TIMEOUT_S)
            if first.WhichOneof("message") != "identity":
                raise sanitize.BackendGarbage("the backend did not start with its identity")
            self._check_identity(first.identity)
            second = await self._read(call, LINK_HANDSHAKE_TIMEOUT_S)
            if second.WhichOneof("message") != "inventory":
                raise sanitize.BackendGarbage("the backend did not send its inventory")
            listed = second.inventory.sessions
            # Counted before anything is converted: an inventory of millions
            # must not hold up the event loop just to be refused.
            sanitize.check_count(
                len(listed),
                sanitize.MAX_REMOTE_SESSIONS,
                what="sessions in its inventory",
                backend=backend.hostname,
            )
            sessions = sanitize.check_inventory(
                [convert.session_from_pb(s) for s in listed], backend.hostname
            )
            # The new inventory replaces the old one at once; watchers get
            # the differences (a backend back from a drop is no flood of
            # events, and changes made meanwhile are no gap).
            before, was_quiet = dict(backend.sessions), set(backend.quiet)
            backend.clear_sessions()
            for info in sessions:
                backend.upsert(info)
            self._transitions(second.inventory.states, publish=False)
            self._sent_at.clear()
            self._set(Health.HEALTHY)
            self._registry.changes.bump()
            for change in changes.resynced(before, backend.sessions, was_quiet, self._quiet_ms()):
                self._registry.publish(change)
            beats = asyncio.get_running_loop().create_task(
                self._heartbeats(call), name=f"heartbeat-{backend.hostname}"
            )
            try:
                while True:
                    self._handle(await self._read(call, HEARTBEAT_MISS_S))
            finally:
                beats.cancel()
                try:
                    await beats
                except asyncio.CancelledError:
                    # The heartbeats' own end; but when this task is being
                    # cancelled (close), that must go on, or close() waits
                    # for ever on a link that reconnects.
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
                except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                    # A heartbeat written as the call ends fails with "RPC
                    # already finished"; the read above says why it ended.
                    # Let through, that error killed the link task and left
                    # the backend HEALTHY.
                    pass
        finally:
            call.cancel()

    async def _read(self, call: Any, limit_s: float) -> backend_pb2.LinkResponse:
        try:
            async with asyncio.timeout(limit_s):
                msg = await call.read()
        except TimeoutError:
            raise _LinkBroken(f"no message from the backend for {limit_s:.0f}s") from None
        if not isinstance(msg, backend_pb2.LinkResponse):  # grpc.aio.EOF
            raise _LinkBroken("link closed by the backend")
        return msg

    def _check_identity(self, identity: backend_pb2.Identity) -> None:
        backend = self.backend
        hostname, server_id, version = sanitize.check_identity(
            identity.hostname, identity.server_id, identity.version, backend=backend.address.url
        )
        backend.server_id, backend.version = server_id, version
        if server_id == self._identity.server_id:
            backend.hostname = hostname
            self._set(Health.REJECTED, "SELF_LOOP: this address leads back to this hub itself")
            raise _Rejected(retry=False)
        holder = self._registry.hostname_holder(hostname, backend)
        if holder is not None:
            self._set(
                Health.REJECTED,
                f"HOSTNAME_TAKEN: hostname {hostname!r} belongs to {holder}",
            )
            raise _Rejected(retry=True)
        if backend.owned and backend.owned != hostname:
            # Whoever answers at this address now may be another machine; the
            # operator says whether the rename is meant (SECURITY.md).
            self._set(
                Health.REJECTED,
                f"HOSTNAME_CHANGED: this address owns hostname {backend.owned!r} but "
                f"presents {hostname!r}; if the rename is meant, set hostname = "
                f"{hostname!r} in its [[servers]] entry and reload, or remove and add it again",
            )
            raise _Rejected(retry=True)
        backend.hostname = hostname
        if not backend.owned:
            backend.owned = hostname
            self._on_owned(backend)

    def _handle(self, msg: backend_pb2.LinkResponse) -> None:
        backend = self.backend
        kind = msg.WhichOneof("message")
        if kind == "heartbeat":
            beat = msg.heartbeat
            sent = self._sent_at.pop(beat.ack_seq, None)
            if sent is not None:
                backend.latency_ms = (time.monotonic() - sent) * 1000
            sanitize.check_count(
                len(beat.activity),
                sanitize.MAX_REMOTE_SESSIONS,
                what="activity entries",
                backend=backend.hostname,
            )
            # Names it never announced are ignored, not trusted.
            for entry in beat.activity:
                sanitize.check_activity(entry.generation, entry.last_activity_ms, backend.hostname)
                backend.record_activity(
                    entry.name,
                    entry.generation,
                    entry.last_activity_ms,
                    entry.ready,
                    sanitize.clean_foreground(entry.foreground),
                )
        elif kind == "event":
            event = msg.event
            if event.HasField("upsert"):
                info = sanitize.check_session(
                    convert.session_from_pb(event.upsert), backend.hostname
                )
                if info.name not in backend.sessions:
                    sanitize.check_count(
                        len(backend.sessions) + 1,
                        sanitize.MAX_REMOTE_SESSIONS,
                        what="sessions",
                        backend=backend.hostname,
                    )
                # A previous name it never announced is not passed on.
                previous = event.previous_name if event.previous_name in backend.sessions else ""
                old = backend.sessions.get(previous or info.name)
                backend.upsert(info, event.previous_name)
                self._registry.changes.bump()
                for change in changes.upserted(old, info, previous):
                    self._registry.publish(change)
            elif event.removed:
                gone = backend.sessions.get(event.removed)
                backend.remove(event.removed)
                self._registry.changes.bump()
                if gone is not None:
                    how = ChangeKind.EXPIRED if event.expired else ChangeKind.KILLED
                    self._registry.publish(changes.removed(gone, how))
        elif kind == "transitions":
            self._transitions(msg.transitions.transitions)
        else:
            raise sanitize.BackendGarbage(f"unexpected {kind or 'empty'} message on the Link")

    def _quiet_ms(self) -> dict[str, int]:
        """The backend's settled sessions and how long each has been quiet."""
        now = time.monotonic()
        return {name: self.backend.idle_ms(name, now) for name in self.backend.quiet}

    def _transitions(
        self, transitions: Sequence[backend_pb2.SessionTransition], *, publish: bool = True
    ) -> None:
        """Record which sessions settled or became active (names the backend
        never announced are ignored); ``publish`` tells watchers too."""
        backend = self.backend
        sanitize.check_count(
            len(transitions),
            sanitize.MAX_REMOTE_SESSIONS,
            what="transitions",
            backend=backend.hostname,
        )
        for entry in transitions:
            sanitize.check_activity(entry.generation, entry.quiet_ms, backend.hostname)
            known = backend.sessions.get(entry.name)
            was = (entry.name in backend.quiet, known.generation if known else -1)
            if backend.transition(entry.name, entry.generation, entry.quiet, entry.quiet_ms):
                # Settled again at a newer generation (the active turn in
                # between was not seen) is news too; the same state is not.
                info = backend.sessions[entry.name]
                if publish and (
                    entry.quiet != was[0] or (entry.quiet and entry.generation != was[1])
                ):
                    self._registry.publish(changes.activity(info, entry.quiet, entry.quiet_ms))

    async def _heartbeats(self, call: Any) -> None:
        while True:
            self._seq += 1
            self._sent_at[self._seq] = time.monotonic()
            # Unacknowledged beats are dropped so the map stays small.
            for old in [s for s in self._sent_at if s < self._seq - 8]:
                del self._sent_at[old]
            await call.write(
                backend_pb2.LinkRequest(heartbeat=backend_pb2.Heartbeat(seq=self._seq))
            )
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
