"""Assembles one wsh server: services, health, reflection, signals, shutdown."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import re
import secrets
import signal
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
from wsh.api.limits import StreamLimits
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
    token: str | None = field(default=None, repr=False)
    generate_token: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # An empty `server` means this server only, never "where the name is".
    strict_routing: bool = False


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
        )
        self.health = HealthServicer()
        self._server = grpc.aio.server(
            options=GRPC_SERVER_OPTIONS,
            interceptors=[TokenAuth(token)] if token else None,
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
        if self._credentials is not None:
            self.port = self._server.add_secure_port(self.settings.listen, self._credentials)
        else:
            self.port = self._server.add_insecure_port(self.settings.listen)
        if self.port == 0:
            raise WshError(
                Kind.UNAVAILABLE, "LISTEN_FAILED", f"Cannot listen on {self.settings.listen}."
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
        await self.federation.close()
        await self.sessions.close_all()

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


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
        default=os.environ.get("WSH_TOKEN"),
        help="bearer token clients must present (16+ characters; default $WSH_TOKEN)",
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
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        default=os.environ.get("WSH_LOG", "INFO"),
        help="log messages of this level and above to stderr (default $WSH_LOG, else INFO)",
    )
    args = parser.parse_args(list(argv))
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
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
        token=args.token or None,
        generate_token=args.generate_token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        strict_routing=args.strict_routing,
    )


async def serve(settings: ServerSettings) -> None:
    config = (
        await asyncio.to_thread(load_config, settings.config_path)
        if settings.config_path is not None
        else Config(path=None)
    )
    server = WshServer(settings, config)
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
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    # gRPC's threads hand finished I/O to the event loop and need the GIL to
    # do it; while the loop emulates a flood of output they would wait the
    # default 5 ms per hand-over, several times per call.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        asyncio.run(serve(settings))
    except WshError as err:
        print(f"wsh server: {err.reason}: {err.message}", file=sys.stderr)
        return 1
    return 0
