"""End-to-end: ``wsh mcp`` driven by the official MCP SDK's own client, over stdio
(spawning ``wsh mcp``) and over streamable HTTP, against a hub with two backends."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx2
import mcp.types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.calls import BASH
from tests.cluster import Cluster
from tests.procs import REPO, ServerProc, assert_no_traceback, read_line
from wsh.mcp.resources import ScreenUri

pytestmark = pytest.mark.e2e

TEST_S = 90.0  # every test's whole body, under pytest's own 120 s
EVENT_S = 20.0
TOOLS = {
    "list_sessions",
    "create_session",
    "send_input",
    "run",
    "await_idle",
    "race_idle",
    "get_screen",
    "get_scrollback",
    "update_session",
    "kill_session",
    "list_servers",
}
ADMIN_TOOLS = {"add_server", "remove_server"}
TOKEN = "mcp-test-token-0123456789"


def params(addr: str, *extra: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "wsh", "mcp", "--addr", addr, *extra],
        env=env,
        cwd=REPO,
    )


@asynccontextmanager
async def stdio(
    addr: str,
    *extra: str,
    env: dict[str, str] | None = None,
    errlog: TextIO | None = None,
    **options: Any,
) -> AsyncIterator[Client]:
    """An MCP client of ``wsh mcp`` spawned on stdio."""
    transport = stdio_client(params(addr, *extra, env=env), errlog=errlog or sys.stderr)
    async with Client(transport, **options) as client:
        yield client


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return result.structured_content


async def ok(client: Client, tool: str, **arguments: Any) -> types.CallToolResult:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return result


async def failed(client: Client, tool: str, **arguments: Any) -> types.CallToolResult:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, text(result)
    return result


async def shell(client: Client, name: str, server: str = "", tags: list[str] | None = None) -> None:
    """A bash session, once it waits at its prompt."""
    await ok(client, "create_session", name=name, server=server, command=BASH, tags=tags or [])
    await ok(client, "await_idle", session=name, server=server, mode="ready", max_wait_ms=20_000)


@pytest.fixture(scope="module")
def hub_addr(cluster: Cluster) -> str:
    return cluster.hub.addr


# --- Over stdio ------------------------------------------------------------------------


async def test_lists_the_tools_with_schemas_and_admin_tools_only_when_allowed(
    hub_addr: str,
) -> None:
    async with asyncio.timeout(TEST_S):
        async with stdio(hub_addr) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == TOOLS
            run = tools["run"]
            assert run.description and "settle" in run.description
            properties = run.input_schema["properties"]
            assert {"session", "text", "quiet_ms", "max_wait_ms"} <= set(properties)
            assert properties["quiet_ms"]["type"] == "integer"
            assert "exclude" in tools["race_idle"].input_schema["properties"]
            prompts = (await client.list_prompts()).prompts
            assert [p.name for p in prompts] == ["wsh_workflow"]
            prompt = await client.get_prompt("wsh_workflow")
            content = prompt.messages[0].content
            assert isinstance(content, types.TextContent)
            assert "race_idle" in content.text and "exclude" in content.text
        async with stdio(hub_addr, "--allow-admin") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == TOOLS | ADMIN_TOOLS


async def test_the_fundamental_loop_run_read_run(hub_addr: str) -> None:
    async with asyncio.timeout(TEST_S):
        async with stdio(hub_addr) as client:
            await shell(client, "loop", server="build-1")
            result = await ok(client, "run", session="loop", text="echo $((6 * 7))\\n")
            screen = data(result)
            assert screen["server"] == "build-1"
            assert screen["exit_code"] is None
            assert screen["generation"] > 0
            assert "\n42\n" in text(result)
            assert text(result).startswith("[loop on build-1 | generation ")
            # The cursor sits after the prompt, marked.
            assert text(result).rstrip().endswith("\u2588")

            again = await ok(client, "run", session="loop", text="exit 3\\n")
            assert data(again)["exit_code"] == 3
            assert "exited with code 3" in text(again).splitlines()[0]

            listed = data(await ok(client, "list_sessions", server="build-1"))
            (loop,) = [s for s in listed["sessions"] if s["name"] == "loop"]
            assert (loop["state"], loop["exit_code"]) == ("exited", 3)
            await ok(client, "kill_session", session="loop", server="build-1")


async def test_fan_out_three_tagged_sessions_on_different_servers_and_race_them(
    hub_addr: str,
) -> None:
    placed = {"hub": "fan-0", "build-1": "fan-1", "build-2": "fan-2"}
    async with asyncio.timeout(TEST_S):
        async with stdio(hub_addr) as client:
            for server, name in placed.items():
                await shell(client, name, server=server, tags=["fan"])
            sent = []
            for delay, (server, name) in enumerate(placed.items()):
                done = await ok(
                    client,
                    "send_input",
                    session=name,
                    server=server,
                    text=f"sleep 0.{delay}; echo done-{name}\\n",
                )
                sent.append({"session": name, "server": server, **data(done)})
            # Each session is skipped until it moves past its input's generation,
            # then reported once: three calls, three different sessions.
            exclude = [
                {"session": s["session"], "server": s["server"], "generation": s["generation"]}
                for s in sent
            ]
            collected: list[dict[str, Any]] = []
            for _ in placed:
                result = await ok(
                    client,
                    "race_idle",
                    tags=["fan"],
                    mode="ready",
                    max_wait_ms=30_000,
                    exclude=exclude,
                )
                won = data(result)
                assert f"done-{won['session']}" in text(result)
                collected.append(won)
                exclude = [e for e in exclude if e["session"] != won["session"]]
                exclude.append(
                    {
                        "session": won["session"],
                        "server": won["server"],
                        "generation": won["generation"],
                    }
                )
            assert {(c["server"], c["session"]) for c in collected} == set(placed.items())
            for server, name in placed.items():
                await ok(client, "kill_session", session=name, server=server)


async def test_a_subscribed_screen_is_updated_when_its_session_changes(hub_addr: str) -> None:
    uri = ScreenUri("build-2", "watched").uri
    async with asyncio.timeout(TEST_S):
        async with stdio(hub_addr) as client:
            await shell(client, "watched", server="build-2")
            listed = [r.uri for r in (await client.list_resources()).resources]
            assert uri in listed
            async with client.listen(resource_subscriptions=[uri]) as updates:
                await ok(client, "send_input", session="watched", text="echo fresh-$((40+2))\\n")
                async with asyncio.timeout(EVENT_S):
                    async for event in updates:
                        assert getattr(event, "uri", None) == uri
                        break
            read = await client.read_resource(uri)
            content = read.contents[0]
            assert isinstance(content, types.TextResourceContents)
            assert "fresh-42" in content.text


async def test_a_screen_subscribed_the_pre_2026_way_is_notified(hub_addr: str) -> None:
    uri = ScreenUri("hub", "legacy").uri
    updated: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            await updated.put(str(message.params.uri))

    async with asyncio.timeout(TEST_S):
        async with stdio(hub_addr, mode="legacy", message_handler=on_message) as client:
            capabilities = client.server_capabilities.resources
            assert capabilities is not None and capabilities.subscribe
            await shell(client, "legacy")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated as of 2026-07-28, not before
                await client.subscribe_resource(uri)
            await ok(client, "send_input", session="legacy", text="echo seen\\n")
            assert await asyncio.wait_for(updated.get(), EVENT_S) == uri


async def test_an_ambiguous_name_is_a_tool_error_naming_the_servers(hub_addr: str) -> None:
    async with asyncio.timeout(TEST_S):
        async with stdio(hub_addr) as client:
            for server in ("build-1", "build-2"):
                await ok(client, "create_session", name="twin", server=server, command="cat")
            result = await failed(client, "get_screen", session="twin")
            error = data(result)
            assert error["reason"] == "SESSION_AMBIGUOUS"
            assert {"build-1", "build-2"} <= set(error["metadata"]["servers"].split(", "))
            assert "`server`" in error["hint"]
            assert text(result).startswith("SESSION_AMBIGUOUS: ")
            assert "Hint: " in text(result)
            named = await ok(client, "get_screen", session="twin", server="build-2")
            assert data(named)["server"] == "build-2"


async def test_bad_arguments_are_tool_errors_and_the_server_carries_on(hub_addr: str) -> None:
    async with asyncio.timeout(TEST_S):
        async with stdio(hub_addr) as client:
            await ok(client, "create_session", name="target", command="cat")
            wrong_types = await failed(client, "run", session=["x"], text=5)
            assert "validation" in text(wrong_types)
            await failed(client, "await_idle", session="target", quiet_ms=-1)
            await failed(client, "run", text="no session\\n")
            unknown = await failed(client, "get_screen", session="no-such-session")
            assert data(unknown)["reason"] == "SESSION_NOT_FOUND"
            assert "list_sessions" in data(unknown)["hint"]
            huge = await failed(client, "send_input", session="target", text="x" * (2 << 20))
            assert data(huge)["reason"] == "INPUT_TOO_LARGE"
            key = await failed(client, "send_input", session="target", keys=["Hyper"])
            assert data(key)["reason"] == "UNKNOWN_KEY"
            escape = await failed(client, "send_input", session="target", text="\\q")
            assert data(escape)["reason"] == "INVALID_ESCAPE"
            try:
                missing = await client.call_tool("rm_rf", {})
                assert missing.is_error
            except MCPError:
                pass  # an unknown tool may be a protocol error: either way no crash
            with pytest.raises(MCPError):
                await client.read_resource("wsh://build-1/no-such-session/screen")
            # Still serving after all of it.
            listed = data(await ok(client, "list_sessions"))
            assert "target" in {s["name"] for s in listed["sessions"]}
            await ok(client, "kill_session", session="target")


async def test_a_wrong_hub_token_is_reported_and_never_shown(tmp_path: Path) -> None:
    right, wrong = "right-token-0123456789abcdef", "wrong-token-0123456789abcdef"
    log_path = tmp_path / "mcp.log"
    with (
        ServerProc("guarded", env={"WSH_TOKEN": right}, log_path=tmp_path / "hub.log") as hub,
        log_path.open("w") as errlog,
    ):
        async with asyncio.timeout(TEST_S):
            env = {"WSH_TOKEN": wrong}
            async with stdio(hub.addr, "--log-level", "DEBUG", env=env, errlog=errlog) as client:
                result = await failed(client, "list_sessions")
                error = data(result)
                assert error["reason"] in {"PERMISSION_DENIED", "TOKEN_INVALID"}
                assert "WSH_TOKEN" in error["hint"]
                shown = text(result) + json.dumps(error)
                assert wrong not in shown and right not in shown
    log = log_path.read_text()
    assert wrong not in log and right not in log
    assert_no_traceback(log)


# --- Over streamable HTTP --------------------------------------------------------------


@pytest.fixture(scope="module")
def http_url(hub_addr: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``wsh mcp --listen`` on a free loopback port, with a token."""
    log_path = tmp_path_factory.mktemp("mcp-http") / "mcp.log"
    env = {**os.environ, "WSH_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "wsh", "mcp", "--addr", hub_addr, "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert proc.stderr is not None
        line = read_line(proc.stderr, 30.0).decode()
        assert "listening on http://" in line, line
        yield line.split("listening on ")[1].strip()
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=15)
    assert proc.returncode == 0, rest.decode()
    log = rest.decode()
    assert TOKEN not in log
    assert_no_traceback(log)
    log_path.write_text(log)


@asynccontextmanager
async def http(url: str, token: str = TOKEN) -> AsyncIterator[Client]:
    headers = {"authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as session,
        Client(streamable_http_client(url, http_client=session)) as client,
    ):
        yield client


def post_without(url: str, token: str | None) -> int:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
        assert TOKEN not in body and (token is None or token not in body)
        return exc.code


def test_http_needs_the_token(http_url: str) -> None:
    assert post_without(http_url, None) == 401
    assert post_without(http_url, "not-the-token-at-all") == 403


async def test_http_lists_tools_and_runs_the_loop(http_url: str) -> None:
    async with asyncio.timeout(TEST_S):
        async with http(http_url) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == TOOLS
            await shell(client, "over-http", server="build-2")
            result = await ok(client, "run", session="over-http", text="echo http-$((1+1))\\n")
            assert "http-2" in text(result)
            assert data(result)["server"] == "build-2"
            unknown = await failed(client, "get_screen", session="nowhere-at-all")
            assert data(unknown)["reason"] == "SESSION_NOT_FOUND"
            await failed(client, "run", session=7, text=[1])


async def test_http_pushes_a_subscribed_screens_update(http_url: str) -> None:
    uri = ScreenUri("build-1", "http-watched").uri
    async with asyncio.timeout(TEST_S):
        async with http(http_url) as client:
            await shell(client, "http-watched", server="build-1")
            async with client.listen(resource_subscriptions=[uri]) as updates:
                await ok(client, "send_input", session="http-watched", text="echo pushed\\n")
                async with asyncio.timeout(EVENT_S):
                    async for event in updates:
                        assert getattr(event, "uri", None) == uri
                        break
            read = await client.read_resource(uri)
            content = read.contents[0]
            assert isinstance(content, types.TextResourceContents)
            assert "pushed" in content.text
