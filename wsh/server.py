"""Assembles one wsh server from its :class:`~wsh.config.ServerConfig`: services,
health, reflection, signals, shutdown. ``wsh server`` (:mod:`wsh.cli.server`)
builds the config and calls :func:`serve`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import secrets
import signal
import socket
import stat
import string
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from wsh import defaults
from wsh.api import reflection
from wsh.api.auth import TokenAuth, check_token_strength
from wsh.api.backend import BackendServicer
from wsh.api.hub import HubServicer
from wsh.api.limits import (
    StreamLimits,
    default_max_connections,
    fd_reserve,
    open_file_limit,
    raise_fd_limit,
)
from wsh.api.metrics import Metrics, MetricsInterceptor, ServerState
from wsh.api.status import RequestGuard
from wsh.config import ServerConfig
from wsh.errors import Kind, WshError
from wsh.federation.manager import Federation
from wsh.identity import ServerIdentity, resolve_hostname
from wsh.sessions.manager import SessionManager
from wsh.v1 import backend_pb2, backend_pb2_grpc, hub_pb2, hub_pb2_grpc

if TYPE_CHECKING:
    from wsh.api.tracing import Tracing

log = logging.getLogger("wsh.server")

TOKEN_ALPHABET = string.ascii_letters + string.digits
SERVICE_NAMES = (
    hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name,
    backend_pb2.DESCRIPTOR.services_by_name["BackendService"].full_name,
)

# Hubs ping their backends every second so that a cut link shows within
# seconds; the server must accept pings that often, with or without calls.
GRPC_SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", defaults.MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", defaults.MAX_MESSAGE_BYTES),
    # Per connection; a hub multiplexes all the calls it forwards on one.
    ("grpc.max_concurrent_streams", 4096),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),
    ("grpc.http2.max_ping_strikes", 0),
    # gRPC sets SO_REUSEPORT by default: a second server on the same port
    # started, said "listening" and got a random share of the calls.
    ("grpc.so_reuseport", 0),
    # A connection that has not finished its TLS and HTTP/2 handshakes within
    # this time is closed (gRPC's default is 120 s): idle TCP connections
    # cannot keep the connection slots (--max-connections) for long.
    ("grpc.server_handshake_timeout_ms", 10_000),
    # Calls that arrived and wait for the server to take them. Past gRPC's
    # soft limit (1,000) it drops new calls at random, anyone's: streams
    # opened and reset at once (rapid reset) filled the queue and 38% of
    # other clients' calls were CANCELLED. Such a flood is cut instead (see
    # TokenAuth); these calls only wait.
    ("grpc.server.max_pending_requests", 10_000),
    ("grpc.server.max_pending_requests_hard_limit", 10_000),
)


def is_loopback_listen(listen: str) -> bool:
    """Loopback addresses and Unix sockets are reachable from this machine only."""
    if listen.startswith("unix:"):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_server_token(settings: ServerConfig) -> str | None:
    """The token clients must present, or None on a loopback-only server without one.

    A server reachable from the network runs shells for whoever reaches it,
    so it refuses to start without a token unless asked to make one.
    """
    token = settings.token
    if token:
        check_token_strength(token)
        return token
    if is_loopback_listen(settings.listen):
        return None
    if settings.generate_token:
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(32))
        # Shown once, to the operator only; never logged.
        print(f"wsh server: generated token: {token}", file=sys.stderr, flush=True)
        return token
    raise WshError(
        Kind.FAILED_PRECONDITION,
        "TOKEN_REQUIRED",
        f"Listening on {settings.listen} (not loopback) needs a token: pass --token or "
        "WSH_TOKEN (16+ characters), set [server] token in the config, or use "
        "--generate-token.",
    )


def server_credentials(settings: ServerConfig) -> grpc.ServerCredentials | None:
    """The TLS credentials to serve with (None: plaintext). That the certificate
    and key come together is checked when the config is built."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        chain = settings.tls_cert.read_bytes()
        key = settings.tls_key.read_bytes()
        client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    except OSError as exc:
        raise WshError(
            Kind.INVALID_ARGUMENT, "TLS_INVALID", f"Cannot read {exc.filename}: {exc.strerror}."
        ) from None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class WshServer:
    """One running server. ``start()`` binds; ``stop()`` shuts down cleanly."""

    def __init__(self, settings: ServerConfig, tracing: Tracing | None = None) -> None:
        """``tracing``: the tracer provider to use (tests); by default one from
        the ``OTEL_*`` variables when ``settings.tracing`` is on."""
        self.settings = settings
        self.identity = ServerIdentity(hostname=resolve_hostname(settings.hostname))
        token = resolve_server_token(settings)
        self._credentials = server_credentials(settings)
        if tracing is None and settings.tracing:
            from wsh.api.tracing import Tracing

            tracing = Tracing.from_env(self.identity.hostname)
        self.tracing = tracing
        self.federation = Federation(self.identity, settings, own_token=token)
        self.sessions = SessionManager(
            self.identity.hostname,
            max_sessions=settings.max_sessions,
            exited_retention_s=settings.exited_retention_s,
            scrollback_limit=settings.scrollback_lines,
            scrollback_bytes=settings.scrollback_bytes,
            max_attachers=settings.max_attachers,
            attach_buffer_bytes=settings.attach_buffer_bytes,
        )
        self.health = HealthServicer()
        self.max_connections = settings.max_connections or default_max_connections(
            open_file_limit(), settings.max_sessions
        )
        # The token is checked first, before anything reads a request body;
        # RequestGuard must stay last: it sees only authenticated calls.
        self._auth = TokenAuth(token) if token else None
        guard = RequestGuard(self._auth.trust if self._auth else None)
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [guard]
        if self._auth:
            interceptors.insert(0, self._auth)
        # Off by default, and then nothing of it runs. First when on: refused
        # calls (UNAUTHENTICATED) are counted too.
        self.metrics = Metrics() if settings.metrics_listen else None
        if self.metrics is not None:
            interceptors.insert(0, MetricsInterceptor(self.metrics))
        if self.tracing is not None:
            interceptors.insert(0, self.tracing.server_interceptor())
        self._server = grpc.aio.server(
            options=(
                *GRPC_SERVER_OPTIONS,
                ("grpc.max_allowed_incoming_connections", self.max_connections),
            ),
            interceptors=interceptors,
        )
        limits = StreamLimits()
        self._hub = HubServicer(
            self.identity,
            self.sessions,
            self.federation,
            limits,
            strict_routing=settings.strict_routing,
            metrics=self.metrics,
            client_span=self.tracing.client_span if self.tracing else None,
            local_sessions=settings.local_sessions,
        )
        hub_pb2_grpc.add_HubServiceServicer_to_server(self._hub, self._server)
        self._backend = BackendServicer(self.identity, self.sessions, limits)
        backend_pb2_grpc.add_BackendServiceServicer_to_server(self._backend, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable(
            self._server,
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
        )
        self.port = 0
        self.metrics_port = 0

    async def start(self) -> None:
        listen = self.settings.listen
        if listen.startswith("unix:"):
            await asyncio.to_thread(refuse_live_socket, listen.removeprefix("unix:"))
        try:
            if self._credentials is not None:
                self.port = self._server.add_secure_port(listen, self._credentials)
            else:
                self.port = self._server.add_insecure_port(listen)
        except RuntimeError:  # grpc says only "Failed to bind"; find out why
            self.port = 0
        if self.port == 0:
            why = await asyncio.to_thread(bind_error, listen)
            raise WshError(
                Kind.UNAVAILABLE,
                "ADDRESS_IN_USE" if why == os.strerror(errno.EADDRINUSE) else "LISTEN_FAILED",
                f"Cannot listen on {listen}: {why or 'unknown error'}.",
            )
        if self.metrics is not None and self.settings.metrics_listen:
            self.metrics.watch(
                ServerState(self.sessions, self.federation.registry, self._hub.races_open)
            )
            self.metrics_port = await asyncio.to_thread(
                self.metrics.start_http, self.settings.metrics_listen
            )
        await self._server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self.federation.start()

    @property
    def address(self) -> str:
        if self.settings.listen.startswith("unix:"):
            return self.settings.listen
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def stop(self, drain_s: float = 0.0, cut_short: asyncio.Event | None = None) -> None:
        """Health NOT_SERVING; drain for ``drain_s`` (or until ``cut_short`` is
        set); finish or cancel calls; kill and reap every session.

        While it drains the server serves every call but CreateSession
        (SERVER_DRAINING), and its hubs, told on their Links, send it no new
        sessions: what an agent does in a session goes on until the end.
        """
        await self.health.enter_graceful_shutdown()
        if drain_s > 0:
            log.info(
                "draining for %.0f s: serving the sessions there are, refusing new ones",
                drain_s,
            )
            self._hub.draining = True
            self._backend.drain(drain_s)
            waiting = (cut_short or asyncio.Event()).wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting, drain_s)
        self._backend.end_links()
        shutting_down = WshError(
            Kind.UNAVAILABLE,
            "SERVER_SHUTTING_DOWN",
            f"Server {self.identity.hostname!r} is shutting down.",
        )
        self.sessions.interrupt_waits(shutting_down)
        self._hub.interrupt_races(shutting_down)
        await self._server.stop(self.settings.shutdown_grace_s)
        if self._auth is not None:
            self._auth.close()
        await self.federation.close()
        await self.sessions.close_all()
        if self.metrics is not None:
            await self.metrics.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.close)

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


def refuse_live_socket(path: str) -> None:
    """Refuse a Unix socket path another server is listening on.

    gRPC unlinks an existing socket file and binds anew: a second server
    would silently take the path from a running one. A stale file left by a
    server that died (nothing accepts on it) may be replaced.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise WshError(
            Kind.UNAVAILABLE, "LISTEN_FAILED", f"Cannot listen on unix:{path}: {exc.strerror}."
        ) from None
    if not stat.S_ISSOCK(mode):
        return  # gRPC refuses to bind over other files: "Address already in use"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(path)
        except OSError:
            return  # stale: nobody listens
    raise WshError(
        Kind.UNAVAILABLE,
        "ADDRESS_IN_USE",
        f"Cannot listen on unix:{path}: another server is listening there.",
    )


def bind_error(listen: str) -> str:
    """Why binding ``listen`` fails, as the system says it ("Address already in use")."""
    if listen.startswith("unix:"):
        path = Path(listen.removeprefix("unix:"))
        if path.exists():
            return os.strerror(errno.EADDRINUSE)
        return "" if path.parent.is_dir() else os.strerror(errno.ENOENT)
    host, _, port = listen.rpartition(":")
    try:
        info = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        return str(exc)
    family, address = info[0][0], info[0][4]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


async def serve(settings: ServerConfig) -> None:
    """Run a server until SIGTERM or SIGINT, then stop it cleanly."""
    before, after = raise_fd_limit()
    server = WshServer(settings)
    log.info(
        "open-file limit %d (was %d); up to %d connections, %d descriptors kept for "
        "%d sessions and the server",
        after,
        before,
        server.max_connections,
        fd_reserve(settings.max_sessions),
        settings.max_sessions,
    )
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ident = server.identity
    if server.metrics_port:
        host = settings.metrics_listen.rpartition(":")[0] if settings.metrics_listen else ""
        log.info("metrics on http://%s:%d/metrics", host, server.metrics_port)
    # Tests and scripts read this line to learn the bound port.
    print(
        f"wsh: listening on {server.address} as {ident.hostname} "
        f"(server_id {ident.server_id}, version {ident.version})",
        flush=True,
    )
    await stop.wait()
    log.info("shutting down")
    stop.clear()  # a second signal cuts the drain short
    await server.stop(settings.drain_s, stop)
