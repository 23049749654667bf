"""The MCP server over one hub: tools, screen resources and their updates, the prompt,
served over stdio or streamable HTTP.

Built on the official SDK's :class:`~mcp.server.mcpserver.MCPServer`. Two
things it has no public hook for: ``resources/list`` and ``resources/read``
of resources that come and go with the cluster's sessions (overridden here),
and ``resources/subscribe`` (registered on its low-level server).
"""

from __future__ import annotations

import hmac
import json
import socket
import sys
from typing import Any

import uvicorn
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    EmptyResult,
    InputRequiredResult,
    Resource,
    ResourceTemplate,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import AnyUrl, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from wsh import __version__
from wsh.client import AsyncClient, WshRpcError
from wsh.mcp import prompt, stdio
from wsh.mcp.resources import (
    ScreenResources,
    ScreenUri,
    ScreenWatches,
    TooManyWatches,
    parse_uri,
)
from wsh.mcp.tools import Tools
from wsh.text import printable

INSTRUCTIONS = (
    "Terminal sessions on real PTYs across a cluster of wsh servers. Use `run` to type a "
    "command and get the screen once its output settles; `race_idle` to collect the first "
    "of several tagged sessions to finish. The prompt `wsh_workflow` explains the loop."
)
MCP_PATH = "/mcp"


class WshMCP(MCPServer[Any]):
    """The MCP server of ``wsh mcp``: every tool and resource is a call to the hub."""

    def __init__(self, client: AsyncClient, *, allow_admin: bool = False) -> None:
        self.bus = InMemorySubscriptionBus()
        super().__init__(
            name="wsh",
            title="wsh terminal sessions",
            instructions=INSTRUCTIONS,
            version=__version__,
            subscriptions=self.bus,
            log_level="WARNING",
        )
        self.client = client
        self.screens = ScreenResources(client)
        self.watches = ScreenWatches(client, self._publish)
        Tools(client).register(self, allow_admin=allow_admin)
        self.add_prompt(
            Prompt.from_function(prompt.workflow, name=prompt.NAME, description=prompt.DESCRIPTION)
        )
        self.middleware.append(self._listen)
        # MCPServer has no public way to serve resources/subscribe (the
        # revisions before 2026-07-28 subscribe this way); its low-level
        # server does, and then advertises the capability.
        self.lowlevel.add_request_handler(
            "resources/subscribe", SubscribeRequestParams, self._subscribe
        )
        self.lowlevel.add_request_handler(
            "resources/unsubscribe", UnsubscribeRequestParams, self._unsubscribe
        )

    @property
    def lowlevel(self) -> Server[Any]:
        """The SDK's low-level server under MCPServer (2.3 names it only privately):
        for resources/subscribe, and to run it on :mod:`wsh.mcp.stdio`'s pipes."""
        return self._lowlevel_server

    async def close(self) -> None:
        """Stop every watch (the client is the caller's to close)."""
        await self.watches.close()

    # --- Resources ----------------------------------------------------------------

    async def list_resources(self) -> list[Resource]:
        try:
            screens = await self.screens.list_screens()
        except WshRpcError as exc:
            raise _hub_error(exc) from None
        return [*await super().list_resources(), *screens]

    async def list_resource_templates(self) -> list[ResourceTemplate]:
        return [*await super().list_resource_templates(), *self.screens.templates()]

    async def read_resource(
        self, uri: AnyUrl | str, context: Any = None
    ) -> list[ReadResourceContents] | InputRequiredResult:
        screen = parse_uri(str(uri))
        if screen is None:
            found = await super().read_resource(uri, context)
            return found if isinstance(found, InputRequiredResult) else list(found)
        return await self.screens.read(screen)

    async def _publish(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))
        await self.watches.notify_legacy(uri)

    def _screen(self, uri: object) -> ScreenUri:
        screen = parse_uri(str(uri))
        if screen is None:
            raise MCPError(INVALID_PARAMS, f"not a screen resource: {printable(str(uri))}")
        return screen

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        try:
            self.watches.subscribe(ctx.session, self._screen(params.uri))
        except TooManyWatches as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        await self.watches.synced()
        return EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        self.watches.unsubscribe(ctx.session, self._screen(params.uri))
        return EmptyResult()

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Watch the screens a ``subscriptions/listen`` stream asks for while it is open."""
        if ctx.method != "subscriptions/listen" or ctx.request_id is None:
            return await call_next(ctx)
        try:
            params = SubscriptionsListenRequestParams.model_validate(ctx.params or {})
        except ValidationError:
            return await call_next(ctx)  # the SDK refuses it with the details
        uris = params.notifications.resource_subscriptions or ()
        screens = list({s.uri: s for s in map(parse_uri, uris) if s is not None}.values())
        held: list[ScreenUri] = []
        try:
            for screen in screens:
                self.watches.acquire(screen)
                held.append(screen)
            if held:
                # The acknowledgement then means a change made after it is reported.
                await self.watches.synced()
            return await call_next(ctx)
        except TooManyWatches as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        finally:
            for screen in held:
                self.watches.release(screen)


def _hub_error(exc: WshRpcError) -> MCPError:
    return MCPError(INTERNAL_ERROR, f"{exc.reason or exc.code.name}: {printable(exc.message)}")


# --- Transports --------------------------------------------------------------------


async def serve_stdio(server: WshMCP) -> None:
    """Serve one client on standard input and output until it closes them."""
    try:
        async with stdio.pipes() as streams:
            if streams is None:
                await server.run_stdio_async()
                return
            lowlevel = server.lowlevel
            async with stdio_server(*streams) as (read, write):  # type: ignore[arg-type]
                await lowlevel.run(read, write, lowlevel.create_initialization_options())
    finally:
        await server.close()


class BearerAuth:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer TOKEN``.

    Compared in constant time; a refusal says why and never echoes what was sent.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            presented = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(presented, self._expected):
                await _refuse(send, missing=not presented)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, *, missing: bool) -> None:
    reason = "UNAUTHENTICATED" if missing else "PERMISSION_DENIED"
    body = json.dumps(
        {
            "error": reason,
            "message": "this wsh mcp server needs `Authorization: Bearer TOKEN` (the token it "
            "was started with)"
            if missing
            else "wrong token",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401 if missing else 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: any free one), handed to uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve_http(server: WshMCP, sock: socket.socket, token: str | None) -> None:
    """Serve streamable HTTP at ``/mcp`` on ``sock`` until SIGINT or SIGTERM."""
    host, port = sock.getsockname()[:2]
    app: ASGIApp = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    if token:
        app = BearerAuth(app, token)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    shown = f"[{host}]" if ":" in host else host
    print(f"wsh mcp: listening on http://{shown}:{port}{MCP_PATH}", file=sys.stderr, flush=True)
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        await server.close()
