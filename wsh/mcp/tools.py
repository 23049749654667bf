"""The MCP tools: each a thin call through the SDK's :class:`~wsh.client.AsyncClient`.

Names, descriptions and argument schemas are what a model reads to choose a
tool, so each description says what the tool is for and what comes back;
durations carry their unit in the name (``quiet_ms``, ``max_wait_ms``).
Every tool answers with text (a screen with the cursor marked, a list) and
structured content (generation, exit code, server...), or with a tool error
(:mod:`wsh.mcp.errors`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, ParamSpec

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from wsh.cli.escapes import decode_escapes
from wsh.client import DEFAULT_IDLE_MS, AsyncClient, WshRpcError
from wsh.defaults import MAX_INPUT_BYTES, MAX_WAIT_CAP_MS, MAX_WAIT_DEFAULT_MS
from wsh.mcp.errors import rpc_tool_error, tool_error
from wsh.mcp.screens import (
    CURSOR_NOTE,
    idle_data,
    idle_text,
    screen_data,
    screen_text,
    server_data,
    server_line,
    session_data,
    session_line,
    session_state,
)
from wsh.v1 import types_pb2

P = ParamSpec("P")

# Slack on top of a wait's own bound for the call's gRPC deadline: the hub
# answers IDLE_TIMEOUT at max_wait_ms, this only catches a hub that hangs.
_WAIT_SLACK_S = 30.0
_SCROLLBACK_PAGE_MAX = 10_000

# --- Argument types (module level: the SDK reads them from the signatures) ----------

SessionName = Annotated[
    str, Field(min_length=1, max_length=256, description="the session's name (list_sessions)")
]
ServerName = Annotated[
    str,
    Field(
        max_length=256,
        description="hostname of the server owning the session; empty: the one session "
        "of that name in the cluster",
    ),
]
Tags = Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=256)]
QuietMs = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_WAIT_CAP_MS,
        description="milliseconds without output that count as settled (quiet mode; in "
        "ready mode only where readiness cannot be told)",
    ),
]
MaxWaitMs = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_WAIT_CAP_MS,
        description=f"give up after this many milliseconds with IDLE_TIMEOUT; 0: "
        f"{MAX_WAIT_DEFAULT_MS}",
    ),
]
Generation = Annotated[int, Field(ge=0, le=2**64 - 1)]
Mode = Annotated[
    Literal["quiet", "ready"],
    Field(
        description="quiet: settled after quiet_ms without output; ready: settled when "
        "the foreground program waits for input (a shell prompt, a REPL)"
    ),
]
Text = Annotated[
    str,
    Field(
        max_length=4 * MAX_INPUT_BYTES,
        description="what to type; escapes \\n (Enter) \\r \\t \\e (Escape) \\\\ \\0 \\xNN "
        "(\\x03 is Ctrl-C) \\uNNNN are decoded unless escapes is false",
    ),
]
Escapes = Annotated[bool, Field(description="decode backslash escapes in text")]


class Exclusion(BaseModel):
    """A session a race skips until its generation moves past ``generation``."""

    session: Annotated[str, Field(min_length=1, max_length=256)]
    server: Annotated[str, Field(max_length=256, description="empty: found by name")] = ""
    generation: Generation


# Keys by name: what a terminal sends for each (xterm's normal cursor mode).
_KEYS = {
    "enter": b"\r",
    "tab": b"\t",
    "escape": b"\x1b",
    "esc": b"\x1b",
    "backspace": b"\x7f",
    "space": b" ",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "right": b"\x1b[C",
    "left": b"\x1b[D",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "delete": b"\x1b[3~",
    "insert": b"\x1b[2~",
    "f1": b"\x1bOP",
    "f2": b"\x1bOQ",
    "f3": b"\x1bOR",
    "f4": b"\x1bOS",
}
KEY_NAMES = "Enter, Tab, Escape, Backspace, Space, Up, Down, Left, Right, Home, End, PageUp, \
PageDown, Delete, Insert, F1-F4, Ctrl-A ... Ctrl-Z"

Keys = Annotated[
    list[Annotated[str, Field(max_length=32)]],
    Field(max_length=1024, description=f"keys to press after text, by name: {KEY_NAMES}"),
]


class BadArgument(ValueError):
    """An argument the tool itself refuses, with the reason to report."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def key_bytes(name: str) -> bytes:
    """The bytes for a key name (any case; ``Ctrl-C``, ``Ctrl+C`` and ``C-c`` alike)."""
    word = name.strip().lower().replace("+", "-")
    if word in _KEYS:
        return _KEYS[word]
    for prefix in ("ctrl-", "c-"):
        letter = word.removeprefix(prefix)
        if word.startswith(prefix) and len(letter) == 1 and "a" <= letter <= "z":
            return bytes([ord(letter) - ord("a") + 1])
    raise BadArgument("UNKNOWN_KEY", f"unknown key {name[:32]!r}; known: {KEY_NAMES}")


def input_bytes(text: str, keys: Sequence[str], escapes: bool) -> bytes:
    """``text`` (escapes decoded) then ``keys``; at most one input's worth of bytes."""
    try:
        data = decode_escapes(text) if escapes else text.encode()
    except ValueError as exc:
        raise BadArgument("INVALID_ESCAPE", str(exc)) from None
    data += b"".join(key_bytes(key) for key in keys)
    if not data:
        raise BadArgument("EMPTY_INPUT", "nothing to send: give text or keys")
    if len(data) > MAX_INPUT_BYTES:
        raise BadArgument(
            "INPUT_TOO_LARGE", f"input of {len(data)} bytes; at most {MAX_INPUT_BYTES} per call"
        )
    return data


def _wait_deadline(max_wait_ms: int) -> float:
    return (max_wait_ms or MAX_WAIT_DEFAULT_MS) / 1000 + _WAIT_SLACK_S


def _result(text: str, data: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _idle_result(idle: types_pb2.Idle) -> CallToolResult:
    return _result(idle_text(idle), idle_data(idle))


class Tools:
    """The tools over one hub client; :meth:`register` adds them to an MCP server."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    def _guarded(
        self, tool: Callable[P, Awaitable[CallToolResult]]
    ) -> Callable[P, Awaitable[CallToolResult]]:
        """``tool`` with every expected failure turned into a tool error (never a traceback)."""

        @functools.wraps(tool)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
            try:
                return await tool(*args, **kwargs)
            except WshRpcError as exc:
                return rpc_tool_error(exc, self.client.addr)
            except BadArgument as exc:
                return tool_error(exc.reason, str(exc))

        return guarded

    def register(self, server: MCPServer[Any], *, allow_admin: bool) -> None:
        """Add the session tools, and the server registration ones with ``allow_admin``."""
        reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)
        waiting = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
        acting = ToolAnnotations(destructive_hint=False, open_world_hint=True)
        tools: list[tuple[Callable[..., Awaitable[CallToolResult]], str, ToolAnnotations]] = [
            (self.list_sessions, LIST_SESSIONS, reading),
            (self.create_session, CREATE_SESSION, acting),
            (self.send_input, SEND_INPUT, acting),
            (self.run, RUN, acting),
            (self.await_idle, AWAIT_IDLE, waiting),
            (self.race_idle, RACE_IDLE, waiting),
            (self.get_screen, GET_SCREEN, reading),
            (self.get_scrollback, GET_SCROLLBACK, reading),
            (self.update_session, UPDATE_SESSION, ToolAnnotations(idempotent_hint=True)),
            (self.kill_session, KILL_SESSION, ToolAnnotations(destructive_hint=True)),
            (self.list_servers, LIST_SERVERS, reading),
        ]
        if allow_admin:
            tools += [
                (self.add_server, ADD_SERVER, ToolAnnotations(destructive_hint=False)),
                (self.remove_server, REMOVE_SERVER, ToolAnnotations(destructive_hint=True)),
            ]
        for tool, description, hints in tools:
            server.add_tool(
                self._guarded(tool),
                name=tool.__name__,
                description=description,
                annotations=hints,
                structured_output=False,
            )

    # --- Sessions -----------------------------------------------------------------

    async def list_sessions(
        self,
        tags: Tags | None = None,
        server: Annotated[
            str, Field(max_length=256, description="only this server's sessions; empty: all")
        ] = "",
    ) -> CallToolResult:
        response = await self.client.list_sessions_response(server=server, tags=tags or ())
        lines = [session_line(s) for s in response.sessions] or ["no sessions"]
        missing = [entry.hostname or entry.address for entry in response.missing_servers]
        if missing:
            lines.append(f"not listed (server not healthy): {', '.join(missing)}")
        data = {
            "sessions": [session_data(s) for s in response.sessions],
            "missing_servers": missing,
        }
        return _result("\n".join(lines), data)

    async def create_session(
        self,
        name: Annotated[str, Field(max_length=256, description="empty: the server picks")] = "",
        server: Annotated[
            str, Field(max_length=256, description="hostname to run it on; empty: the hub")
        ] = "",
        command: Annotated[
            str, Field(max_length=65536, description="command line; empty: a login shell")
        ] = "",
        tags: Tags | None = None,
        rows: Annotated[int, Field(ge=0, le=1000, description="height; 0: 24")] = 0,
        cols: Annotated[int, Field(ge=0, le=1000, description="width; 0: 80")] = 0,
        cwd: Annotated[str, Field(max_length=4096, description="empty: home")] = "",
        env: Annotated[dict[str, str], Field(max_length=1024)] | None = None,
    ) -> CallToolResult:
        session = await self.client.create_session(
            name,
            server=server,
            command=command,
            rows=rows,
            cols=cols,
            cwd=cwd,
            env=env,
            tags=tags or (),
        )
        return _result(f"created {session_line(session)}", session_data(session))

    async def send_input(
        self,
        session: SessionName,
        text: Text = "",
        keys: Keys | None = None,
        server: ServerName = "",
        escapes: Escapes = True,
    ) -> CallToolResult:
        data = input_bytes(text, keys or (), escapes)
        sent = await self.client.send_input(session, data, server=server)
        return _result(
            f"sent {len(data)} bytes to {session} on {sent.server}; generation {sent.generation}",
            {"session": session, "server": sent.server, "generation": sent.generation},
        )

    async def run(
        self,
        session: SessionName,
        text: Text,
        server: ServerName = "",
        quiet_ms: QuietMs = DEFAULT_IDLE_MS,
        max_wait_ms: MaxWaitMs = 0,
        mode: Annotated[
            Literal["auto", "quiet", "ready"],
            Field(
                description="auto: ready if the program waits for input before the text "
                "is sent (a shell at its prompt), else quiet"
            ),
        ] = "auto",
        escapes: Escapes = True,
    ) -> CallToolResult:
        data = input_bytes(text, (), escapes)
        idle = await self.client.run(
            session,
            data,
            quiet_ms,
            server=server,
            max_wait_ms=max_wait_ms,
            mode=None if mode == "auto" else mode,
            timeout=_wait_deadline(max_wait_ms),
        )
        return _idle_result(idle)

    async def await_idle(
        self,
        session: SessionName,
        server: ServerName = "",
        quiet_ms: QuietMs = DEFAULT_IDLE_MS,
        max_wait_ms: MaxWaitMs = 0,
        last_generation: Annotated[
            Generation | None,
            Field(description="a generation already seen: wait for newer activity first"),
        ] = None,
        mode: Mode = "quiet",
        fresh: Annotated[bool, Field(description="always wait a full quiet_ms")] = False,
    ) -> CallToolResult:
        idle = await self.client.await_idle(
            session,
            server=server,
            timeout_ms=quiet_ms,
            max_wait_ms=max_wait_ms,
            last_generation=last_generation,
            fresh=fresh,
            mode=mode,
            timeout=_wait_deadline(max_wait_ms),
        )
        return _idle_result(idle)

    async def race_idle(
        self,
        tags: Tags | None = None,
        server: Annotated[
            str, Field(max_length=256, description="only this server's sessions; empty: all")
        ] = "",
        quiet_ms: QuietMs = DEFAULT_IDLE_MS,
        max_wait_ms: MaxWaitMs = 0,
        last_session: Annotated[
            str, Field(max_length=256, description="skip it until it moves past last_generation")
        ] = "",
        last_server: Annotated[str, Field(max_length=256)] = "",
        last_generation: Generation | None = None,
        exclude: Annotated[
            list[Exclusion],
            Field(
                max_length=10_000,
                description="sessions already collected (session, server and generation of "
                "each result): skipped until they change",
            ),
        ]
        | None = None,
        mode: Mode = "quiet",
        fresh: Annotated[bool, Field(description="always wait a full quiet_ms")] = False,
    ) -> CallToolResult:
        idle = await self.client.race_first(
            tags=tags or (),
            server=server,
            timeout_ms=quiet_ms,
            max_wait_ms=max_wait_ms,
            last_session=last_session,
            last_server=last_server,
            last_generation=last_generation,
            exclude=[(e.server, e.session, e.generation) for e in exclude or ()],
            fresh=fresh,
            mode=mode,
            timeout=_wait_deadline(max_wait_ms),
        )
        return _idle_result(idle)

    async def get_screen(self, session: SessionName, server: ServerName = "") -> CallToolResult:
        # GetScreen answers with the screen only: its session (server, exit
        # code, foreground) comes from GetSession, asked at the same time.
        screen, found = await asyncio.gather(
            self.client.get_screen(session, server=server),
            self.client.get_session(session, server=server),
        )
        state = session_state(found)
        header = f"[{found.name} on {found.server} | generation {screen.generation} | {state}]"
        data = {
            "session": found.name,
            "server": found.server,
            "exit_code": found.exit_code if found.HasField("exit_code") else None,
            "ready": found.ready,
            "foreground": found.foreground,
            "generation": screen.generation,
            "screen": screen_data(screen),
        }
        return _result(f"{header}\n{screen_text(screen)}", data)

    async def get_scrollback(
        self,
        session: SessionName,
        server: ServerName = "",
        offset_lines: Annotated[
            int, Field(ge=0, le=2**32 - 1, description="first line of the page; 0: the oldest")
        ] = 0,
        limit_lines: Annotated[
            int, Field(ge=0, le=_SCROLLBACK_PAGE_MAX, description="lines per page; 0: 100")
        ] = 0,
    ) -> CallToolResult:
        page = await self.client.get_scrollback(
            session, server=server, offset=offset_lines, limit=limit_lines
        )
        next_offset = page.offset + len(page.lines)
        more = next_offset < page.total_lines
        data = {
            "session": session,
            "server": page.server,
            "lines": list(page.lines),
            "offset_lines": page.offset,
            "total_lines": page.total_lines,
            "next_offset_lines": next_offset if more else None,
        }
        footer = f"[lines {page.offset}-{next_offset - 1} of {page.total_lines}" + (
            f"; next page: offset_lines={next_offset}]" if more else "; the last page]"
        )
        return _result("\n".join([*page.lines, footer]), data)

    async def update_session(
        self,
        session: SessionName,
        server: ServerName = "",
        new_name: Annotated[str, Field(max_length=256, description="empty: keep the name")] = "",
        add_tags: Tags | None = None,
        remove_tags: Tags | None = None,
    ) -> CallToolResult:
        updated = await self.client.update_session(
            session,
            server=server,
            new_name=new_name,
            add_tags=add_tags or (),
            remove_tags=remove_tags or (),
        )
        return _result(f"updated {session_line(updated)}", session_data(updated))

    async def kill_session(self, session: SessionName, server: ServerName = "") -> CallToolResult:
        await self.client.kill_session(session, server=server)
        return _result(f"killed {session}", {"session": session, "server": server})

    # --- Servers ------------------------------------------------------------------

    async def list_servers(self) -> CallToolResult:
        servers = await self.client.list_servers()
        return _result(
            "\n".join(server_line(s) for s in servers),
            {"servers": [server_data(s) for s in servers]},
        )

    async def add_server(
        self,
        address: Annotated[
            str, Field(min_length=1, max_length=2048, description="http[s]://host:port[/prefix]")
        ],
        token: Annotated[
            str | None, Field(max_length=4096, description="the backend's token; none: the hub's")
        ] = None,
        wait_timeout_ms: Annotated[
            int, Field(ge=0, le=120_000, description="wait until healthy; 0: 10000")
        ] = 0,
    ) -> CallToolResult:
        added = await self.client.add_server(
            address, token=token, wait=True, wait_timeout_ms=wait_timeout_ms
        )
        return _result(f"registered {server_line(added)}", server_data(added))

    async def remove_server(
        self,
        hostname: Annotated[str, Field(max_length=256)] = "",
        address: Annotated[
            str, Field(max_length=2048, description="while the hostname is unknown")
        ] = "",
    ) -> CallToolResult:
        await self.client.remove_server(hostname, address=address)
        return _result(f"removed {hostname or address}", {"hostname": hostname, "address": address})


# --- Descriptions: what a model reads to pick a tool ------------------------------------

_SCREEN = (
    "Returns the screen as text under a header line [session on server | generation N | "
    f"state], and as structured content (generation, exit_code, server, ready...). {CURSOR_NOTE}"
)
LIST_SESSIONS = (
    "List terminal sessions across the cluster: name, server, state (running, ready = its "
    "program waits for input, exited with code), foreground command, idle time, generation, "
    "tags. Filter by tags (any of) or server."
)
CREATE_SESSION = (
    "Start a terminal session (a login shell, or `command`) on the hub or on `server`. "
    "Tag sessions to race them later. Returns the session."
)
SEND_INPUT = (
    "Type into a session: `text` (backslash escapes: \\n is Enter, \\x03 is Ctrl-C) and/or "
    "named `keys`. Returns at once with the generation the input made; pass it to "
    "await_idle as last_generation to wait for the output. Prefer `run` for a command."
)
RUN = (
    "Run a command in one call: type `text` (end it with \\n to press Enter), wait until its "
    "output settles, return the screen. The usual loop is run, read the screen, run again. "
    + _SCREEN
)
AWAIT_IDLE = (
    "Wait until a session settles (no output for quiet_ms, or its program waits for input "
    "in ready mode) and return its screen. Pass last_generation from send_input to see only "
    "what came after the input. " + _SCREEN
)
RACE_IDLE = (
    "Wait for the FIRST session to settle among those with any of `tags` (or on `server`; "
    "all sessions when neither) and return it: fan work out to several sessions, then "
    "collect each as it finishes. To collect the next one, call again with every result so "
    "far in `exclude` ({session, server, generation}). " + _SCREEN
)
GET_SCREEN = "The visible screen of a session now, without waiting. " + _SCREEN
GET_SCROLLBACK = (
    "Read a session's history (scrollback then screen, oldest first) one page at a time: "
    "offset_lines, limit_lines (default 100); the answer tells the next offset."
)
UPDATE_SESSION = "Rename a session (new_name) and add or remove tags, all or nothing."
KILL_SESSION = "End a session's processes and forget the session."
LIST_SERVERS = (
    "The servers of the cluster: the hub first, then each backend with its health and "
    "session count. Pass a hostname as `server` to other tools to act there."
)
ADD_SERVER = (
    "Register a backend server with the hub and wait until it is healthy (admin). "
    "Returns the server; a backend that is not healthy yet stays registered."
)
REMOVE_SERVER = "Deregister a backend server by hostname (or address) (admin)."
