"""Assembles one wsh server from its :class:`~wsh.config.ServerConfig`: services,
health, reflection, signals, shutdown. ``wsh server`` (:mod:`wsh.cli.server`)
builds the config and calls :func:`serve`."""

from __future__ import annotations

import asyncio
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
from wsh.api.status import RequestGuard
from wsh.config import ServerConfig
from wsh.errors import Kind, WshError
from wsh.federation.manager import Federation
from wsh.identity import ServerIdentity, resolve_hostname
from wsh.sessions.manager import SessionManager
from wsh.v1 import backend_pb2, backend_pb2_grpc, hub_pb2, hub_pb2_grpc

log = logging.getLogger("wsh.server")

# In-flight calls get this long to finish after SIGTERM before they are cancelled.
SHUTDOWN_GRACE_S = 2.0
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

    def __init__(self, settings: ServerConfig) -> None:
        self.settings = settings
        self.identity = ServerIdentity(hostname=resolve_hostname(settings.hostname))
        token = resolve_server_token(settings)
        self._credentials = server_credentials(settings)
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
        self._server = grpc.aio.server(
            options=(
                *GRPC_SERVER_OPTIONS,
                ("grpc.max_allowed_incoming_connections", self.max_connections),
            ),
            interceptors=[self._auth, guard] if self._auth else [guard],
        )
        limits = StreamLimits()
        self._hub = HubServicer(
            self.identity,
            self.sessions,
            self.federation,
            limits,
            strict_routing=settings.strict_routing,
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

    async def stop(self) -> None:
        """Health NOT_SERVING, finish or cancel calls, kill and reap every session."""
        await self.health.enter_graceful_shutdown()
        self._backend.end_links()
        shutting_down = WshError(
            Kind.UNAVAILABLE,
            "SERVER_SHUTTING_DOWN",
            f"Server {self.identity.hostname!r} is shutting down.",
        )
        self.sessions.interrupt_waits(shutting_down)
        self._hub.interrupt_races(shutting_down)
        await self._server.stop(SHUTDOWN_GRACE_S)
        if self._auth is not None:
            self._auth.close()
        await self.federation.close()
        await self.sessions.close_all()

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
    # Tests and scripts read this line to learn the bound port.
    print(
        f"wsh: listening on {server.address} as {ident.hostname} "
        f"(server_id {ident.server_id}, version {ident.version})",
        flush=True,
    )
    await stop.wait()
    log.info("shutting down")
    await server.stop()
