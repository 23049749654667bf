"""Assembles one wsh server: services, health, reflection, signals, shutdown."""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import os
import re
import secrets
import signal
import socket
import stat
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from wsh import defaults
from wsh.api.auth import TokenAuth, check_token_strength
from wsh.api.backend import BackendServicer
from wsh.api.hub import HubServicer
from wsh.api.limits import (
    DEFAULT_MAX_CONNECTIONS,
    StreamLimits,
    default_max_connections,
    fd_reserve,
    open_file_limit,
    raise_fd_limit,
)
from wsh.api.status import RequestGuard
from wsh.errors import Kind, WshError
from wsh.federation.config import Config, load_config
from wsh.federation.manager import Federation
from wsh.identity import ServerIdentity, resolve_hostname
from wsh.sessions.manager import SessionManager
from wsh.v1 import backend_pb2, backend_pb2_grpc, hub_pb2, hub_pb2_grpc

log = logging.getLogger("wsh.server")

# In-flight calls get this long to finish after SIGTERM before they are cancelled.
SHUTDOWN_GRACE_S = 2.0
TOKEN_ALPHABET = string.ascii_letters + string.digits
SWITCH_INTERVAL_S = 0.0005
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVICE_NAMES = (
    hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name,
    backend_pb2.DESCRIPTOR.services_by_name["BackendService"].full_name,
)

# Hubs ping their backends every second so that a cut link shows within
# seconds; the server must accept pings that often, with or without calls.
GRPC_SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
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


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything ``wsh server`` is configured with."""

    listen: str = defaults.DEFAULT_ADDR
    hostname: str | None = None
    # None: no config file (a random port); backends added live in memory.
    config_path: Path | None = field(
        default_factory=lambda: default_config_path(defaults.DEFAULT_ADDR)
    )
    max_sessions: int = defaults.MAX_SESSIONS
    exited_retention_s: float = defaults.EXITED_RETENTION_S
    scrollback_lines: int = defaults.SCROLLBACK_LINES
    scrollback_bytes: int = defaults.SCROLLBACK_BYTES
    token: str | None = field(default=None, repr=False)
    generate_token: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # An empty `server` means this server only, never "where the name is".
    strict_routing: bool = False
    # None: as many as the open-file limit allows after its reserve (see limits).
    max_connections: int | None = None


def default_config_path(listen: str) -> Path | None:
    """The config file of a server started without ``--config``: one per listen
    address, so that two servers on one machine never share registrations
    (a backend would link to whatever its neighbour was told to). A random
    port (0) has none: the next run could not find it again."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")) / "wsh"
    if listen.startswith("unix:"):
        path = listen.removeprefix("unix:").removeprefix("//")
        return base / f"server-unix-{path.replace('/', '_')}.toml"
    host, _, port = listen.rpartition(":")
    if port.strip() in ("0", ""):
        return None
    host = re.sub(r"[^A-Za-z0-9._-]", "_", host.strip("[]"))
    return base / f"server-{host}-{port.strip()}.toml"


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


def resolve_server_token(settings: ServerSettings, config: Config) -> str | None:
    """The token clients must present, or None on a loopback-only server without one.

    A server reachable from the network runs shells for whoever reaches it,
    so it refuses to start without a token unless asked to make one.
    """
    token = settings.token or config.token
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


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise WshError(
                Kind.INVALID_ARGUMENT,
                "TLS_INVALID",
                "--tls-client-ca needs --tls-cert and --tls-key.",
            )
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise WshError(
            Kind.INVALID_ARGUMENT, "TLS_INVALID", "--tls-cert and --tls-key go together."
        )
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

    def __init__(self, settings: ServerSettings, config: Config) -> None:
        self.settings = settings
        self.identity = ServerIdentity(
            hostname=resolve_hostname(settings.hostname, config.hostname)
        )
        token = resolve_server_token(settings, config)
        self._credentials = server_credentials(settings)
        self.federation = Federation(self.identity, config, own_token=token)
        self.sessions = SessionManager(
            self.identity.hostname,
            max_sessions=settings.max_sessions,
            exited_retention_s=settings.exited_retention_s,
            scrollback_limit=settings.scrollback_lines,
            scrollback_bytes=settings.scrollback_bytes,
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
        hub_pb2_grpc.add_HubServiceServicer_to_server(
            HubServicer(
                self.identity,
                self.sessions,
                self.federation,
                limits,
                strict_routing=settings.strict_routing,
            ),
            self._server,
        )
        backend_pb2_grpc.add_BackendServiceServicer_to_server(
            BackendServicer(self.identity, self.sessions, limits), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
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
        self.sessions.interrupt_waits(
            WshError(
                Kind.UNAVAILABLE,
                "SERVER_SHUTTING_DOWN",
                f"Server {self.identity.hostname!r} is shutting down.",
            )
        )
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


def read_token_file(path: Path | None) -> str | None:
    """The first line of ``path``, stripped; warns when others may read the file."""
    if path is None:
        return None
    try:
        with path.open(encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            token = f.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise WshError(
            Kind.INVALID_ARGUMENT, "TOKEN_FILE", f"Cannot read the token file {path}: {exc}."
        ) from None
    if not token:
        raise WshError(Kind.INVALID_ARGUMENT, "TOKEN_FILE", f"The token file {path} is empty.")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the token file %s is readable by other users: chmod 600 it", path)
    return token


def parse_args(argv: Sequence[str]) -> ServerSettings:
    parser = argparse.ArgumentParser(prog="wsh server", description="Run a wsh server.")
    parser.add_argument(
        "--listen",
        default=os.environ.get("WSH_LISTEN", defaults.DEFAULT_ADDR),
        help="HOST:PORT (port 0 picks a free one) or unix:PATH to serve on (default %(default)s)",
    )
    parser.add_argument(
        "--hostname",
        default=os.environ.get("WSH_HOSTNAME"),
        help="this server's name in the cluster (default: the system hostname)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML config file: hostname, backends, ip_access, TLS (default $WSH_CONFIG, "
        "else one per listen address: ~/.config/wsh/server-HOST-PORT.toml, or "
        "server-unix-PATH.toml with / as _; with port 0 none, and backends added "
        "are kept for that run only)",
    )
    parser.add_argument(
        "--token",
        help="bearer token clients must present (16+ characters); visible to every local "
        "user in ps: prefer --token-file or $WSH_TOKEN",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=os.environ.get("WSH_TOKEN_FILE"),
        help="read the token from the first line of this file (keep it mode 0600)",
    )
    parser.add_argument(
        "--generate-token",
        action="store_true",
        help="on a non-loopback address without a token, make one and print it once",
    )
    parser.add_argument(
        "--strict-routing",
        action="store_true",
        help="a call naming a session without --server/`server` goes to this server only, "
        "never to a backend that holds the name (for backends you do not trust)",
    )
    parser.add_argument("--tls-cert", type=Path, help="serve TLS with this certificate chain")
    parser.add_argument("--tls-key", type=Path, help="private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca", type=Path, help="require client certificates signed by this CA"
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=defaults.MAX_SESSIONS,
        help="sessions held at once, exited ones included until their retention ends; "
        "more are refused with TOO_MANY_SESSIONS (default %(default)s)",
    )
    parser.add_argument(
        "--exited-retention",
        type=float,
        default=defaults.EXITED_RETENTION_S,
        metavar="SECONDS",
        help="how long an exited session stays readable (default %(default)s)",
    )
    parser.add_argument(
        "--scrollback",
        type=int,
        default=defaults.SCROLLBACK_LINES,
        metavar="LINES",
        help="lines each session keeps above its screen (default %(default)s)",
    )
    parser.add_argument(
        "--scrollback-bytes",
        type=int,
        default=defaults.SCROLLBACK_BYTES,
        metavar="BYTES",
        help="memory each session's history may take; the oldest lines go first "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        help="connections accepted at once, all clients together (default: "
        f"{DEFAULT_MAX_CONNECTIONS}, fewer if the open-file limit needs it)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        default=os.environ.get("WSH_LOG", "INFO"),
        help="log messages of this level and above to stderr (default $WSH_LOG, else INFO)",
    )
    args = parser.parse_args(list(argv))
    if args.max_connections is not None and args.max_connections < 1:
        parser.error("--max-connections must be at least 1")
    if args.scrollback_bytes < 0:
        parser.error("--scrollback-bytes must be at least 0")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.token:
        log.warning(
            "--token on the command line is visible to every user of this machine (ps); "
            "use --token-file or WSH_TOKEN instead"
        )
    return ServerSettings(
        listen=args.listen,
        hostname=args.hostname,
        config_path=args.config
        or (Path(os.environ["WSH_CONFIG"]) if os.environ.get("WSH_CONFIG") else None)
        or default_config_path(args.listen),
        max_sessions=args.max_sessions,
        exited_retention_s=args.exited_retention,
        scrollback_lines=args.scrollback,
        scrollback_bytes=args.scrollback_bytes,
        token=args.token or read_token_file(args.token_file) or os.environ.get("WSH_TOKEN") or None,
        generate_token=args.generate_token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        max_connections=args.max_connections,
        strict_routing=args.strict_routing,
    )


async def serve(settings: ServerSettings) -> None:
    config = (
        await asyncio.to_thread(load_config, settings.config_path)
        if settings.config_path is not None
        else Config(path=None)
    )
    before, after = raise_fd_limit()
    server = WshServer(settings, config)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wsh server``."""
    # gRPC's threads hand finished I/O to the event loop and need the GIL to
    # do it; while the loop emulates a flood of output they would wait the
    # default 5 ms per hand-over, several times per call.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        settings = parse_args(sys.argv[1:] if argv is None else argv)
        asyncio.run(serve(settings))
    except WshError as err:
        print(f"wsh server: {err.reason}: {err.message}", file=sys.stderr)
        return 1
    return 0
