"""Failed calls as MCP tool errors: the server's reason, its message and a next step.

A tool never raises to the SDK (which would log a traceback and tell the
model only "Error executing tool"): every failure becomes a result with
``isError`` set, text the model can act on, and structured content with the
same fields as ``wsh --json`` prints (code, reason, message, metadata, hint).
"""

from __future__ import annotations

from typing import Any

import grpc
from mcp.types import CallToolResult, TextContent

from wsh.client import WshRpcError
from wsh.text import printable

# The next step for each reason a model can do something about.
_HINTS = {
    "SESSION_NOT_FOUND": "call list_sessions to see the sessions there are, or create_session",
    "SESSION_AMBIGUOUS": "several servers hold a session of that name (metadata.servers): "
    "pass `server` to say which",
    "SESSION_NAME_TAKEN": "pick another name, or pass an empty name to let the server pick",
    "SESSION_EXITED": "its program has ended: read it with get_screen, or kill_session it "
    "and create_session again",
    "SERVER_NOT_FOUND": "call list_servers to see the servers of the cluster",
    "SERVER_UNAVAILABLE": "that server is not reachable now; list_servers shows its health; "
    "retry later or use another server",
    "IDLE_TIMEOUT": "the session never went quiet within max_wait_ms: it is still busy "
    "(get_screen shows what it does); wait again, raise max_wait_ms, or interrupt it "
    "with send_input text '\\x03' (Ctrl-C)",
    "NO_SESSIONS": "no session matches the tags and server given (or all are excluded): "
    "list_sessions shows them",
    "INPUT_TOO_LARGE": "send the input in several smaller send_input calls",
    "INPUT_BACKLOG_FULL": "the program is not reading its input: wait (await_idle) before "
    "sending more",
    "TOO_MANY_SESSIONS": "kill_session the sessions you no longer need",
    "EMPTY_INPUT": 'pass `text` (\\n is Enter) or `keys` such as ["Enter"]',
    "INVALID_ESCAPE": "fix the escape, or pass escapes=false to send the text verbatim",
    "UNAUTHENTICATED": "the MCP server has no token for the hub: start `wsh mcp` with "
    "WSH_TOKEN set",
    "PERMISSION_DENIED": "the hub refused the MCP server's token: start `wsh mcp` with the "
    "hub's token in WSH_TOKEN",
}
_UNREACHABLE_HINT = "start the hub with `wsh server`, or point `wsh mcp --addr` at a running one"


def tool_error(
    reason: str,
    message: str,
    *,
    code: str = "INVALID_ARGUMENT",
    metadata: dict[str, str] | None = None,
    hint: str = "",
) -> CallToolResult:
    """An ``isError`` result: ``REASON: message`` and the hint as text, all fields as data."""
    hint = hint or _HINTS.get(reason, "")
    data: dict[str, Any] = {
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": dict(metadata or {}),
    }
    if hint:
        data["hint"] = hint
    text = f"{reason or code}: {message}" + (f"\nHint: {hint}" if hint else "")
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=data, is_error=True
    )


def rpc_tool_error(exc: WshRpcError, addr: str) -> CallToolResult:
    """The tool error for a failed SDK call.

    The hub's messages never carry a token (docs/SECURITY.md); a connection
    failure's message comes from gRPC and names only the address.
    """
    message = printable(exc.message, 2000)
    metadata = {key: printable(value, 512) for key, value in exc.metadata.items()}
    if exc.code == grpc.StatusCode.UNAVAILABLE and not exc.reason:
        return tool_error(
            "HUB_UNREACHABLE",
            f"cannot reach the wsh hub at {addr}: {message}",
            code=exc.code.name,
            hint=_UNREACHABLE_HINT,
        )
    return tool_error(exc.reason or exc.code.name, message, code=exc.code.name, metadata=metadata)
