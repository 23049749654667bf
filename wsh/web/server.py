"""``wsh web``'s HTTP server: the built app from ``static/`` and the gRPC-Web bridge.

One aiohttp application on one port, so the page and its calls share an
origin: no CORS is ever answered, and a page of another site cannot call the
bridge (its gRPC-Web POST needs a preflight that is never granted). Against
DNS rebinding (another site's name pointed at 127.0.0.1), a loopback server
answers only requests whose Host is a loopback name or one of
``allowed_hosts``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources

import grpc.aio
from aiohttp import web

from wsh.web.bridge import Bridge

log = logging.getLogger("wsh.web")

STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
# The page loads its own script and style only and talks to its own origin;
# xterm.js sets styles from script (style-src 'unsafe-inline').
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
    "font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True, slots=True)
class WebConfig:
    listen_host: str
    listen_port: int
    loopback: bool
    token: str | None = field(repr=False)
    allowed_hosts: tuple[str, ...] = ()
    ssl_context: ssl.SSLContext | None = None


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1].lower()
    return host_header.rsplit(":", 1)[0].lower()


def _host_allowed(host_header: str, config: WebConfig) -> bool:
    name = _host_name(host_header)
    # Off loopback every call needs the token, which another site's page
    # does not have.
    return (
        name in config.allowed_hosts
        or not config.loopback
        or name in LOOPBACK_NAMES
        or is_loopback_host(name)
    )


def _guard(config: WebConfig) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not _host_allowed(request.headers.get("host", ""), config):
            raise web.HTTPMisdirectedRequest(
                text="unknown Host: start wsh web with --allow-host NAME to serve it"
            )
        origin = request.headers.get("origin")
        if request.method == "POST" and origin is not None:
            expected = f"{request.scheme}://{request.headers.get('host', '')}"
            if origin != expected:
                raise web.HTTPForbidden(text="cross-origin calls are not accepted")
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return guard


def _static_handler(
    filename: str, content_type: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        data = (resources.files("wsh.web") / "static" / filename).read_bytes()
        return web.Response(
            body=data, headers={"content-type": content_type, "cache-control": "no-cache"}
        )

    return handler


def build_app(config: WebConfig, channel: grpc.aio.Channel, prefix: str) -> web.Application:
    app = web.Application(middlewares=[_guard(config)], client_max_size=1024)
    bridge = Bridge(channel, prefix, config.token)
    app.add_routes(bridge.routes())
    for path, (filename, content_type) in STATIC_FILES.items():
        app.router.add_get(path, _static_handler(filename, content_type))
    return app


async def serve_web(
    config: WebConfig,
    channel: grpc.aio.Channel,
    prefix: str,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> None:
    """Serves until ``stop`` is set; ``on_ready`` gets the page's URL once listening."""
    app = build_app(config, channel, prefix)
    # handler_cancellation: a browser that closes a streaming call cancels
    # its handler, which cancels the hub call (aiohttp's default leaves an
    # idle stream running until its next write fails).
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        family = socket.AF_INET6 if ":" in config.listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.listen_host.strip("[]"), config.listen_port))
        site = web.SockSite(runner, sock, ssl_context=config.ssl_context)
        await site.start()
        port = sock.getsockname()[1]
        scheme = "https" if config.ssl_context else "http"
        on_ready(f"{scheme}://{config.listen_host}:{port}/")
        await stop.wait()
    finally:
        # Ends every hub call first, so that open streams (a watch, an
        # attach) end at once: the runner's cleanup waits for its handlers
        # (up to a minute), and these never end on their own.
        await channel.close(None)
        await runner.cleanup()
