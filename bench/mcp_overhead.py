"""What ``wsh mcp`` adds to an agent's round trip: the ``run`` tool over MCP against
the same calls made directly with the SDK.

(Not named ``mcp.py``: run as a script from bench/, that would shadow the
``mcp`` package it imports.)

One hub, one bash session at its prompt. Each round, in turns: ``run`` through
the MCP SDK's own client talking to ``wsh mcp`` over stdio (as an agent runtime
spawns it), and ``AsyncClient.run`` straight to the hub (the same three calls:
GetSession to pick the wait mode, SendInput, AwaitIdle READY from the input's
generation). Both type ``echo <token>``; every answer must show the token and
the prompt after it. Target: the MCP median at most 2 ms above the direct one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import _harness as h
import grpc
import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from wsh.client import AsyncClient

ROUNDS, QUICK_ROUNDS = 300, 30
WARMUP_RUNS = 10
RUN_S = 120.0
TARGET_OVERHEAD_MS = 2.0
SESSION = "bench-mcp"

Probe = Callable[[str], Awaitable[list[str]]]


def mcp_server_pid() -> int:
    """The ``wsh mcp`` child this process spawned (the SDK does not say which)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"mcp" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                    return int(pid)
    raise RuntimeError("no wsh mcp child process")


def cpu_ms(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far, in milliseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def direct_probe(client: AsyncClient) -> Probe:
    async def probe(token: str) -> list[str]:
        idle = await client.run(SESSION, f"echo {token}\n", timeout=h.RPC_TIMEOUT)
        return list(idle.screen.lines)

    return probe


def mcp_probe(client: Client) -> Probe:
    async def probe(token: str) -> list[str]:
        result = await client.call_tool("run", {"session": SESSION, "text": f"echo {token}\\n"})
        block = result.content[0]
        if result.is_error or not isinstance(block, types.TextContent):
            raise RuntimeError(f"run failed: {result.content}")
        return block.text.splitlines()[1:]  # after the header line

    return probe


async def timed(probe: Probe, samples: list[int], wrong: list[str]) -> None:
    token = uuid.uuid4().hex[:12]
    start = h.now_ns()
    lines = await probe(token)
    samples.append(h.now_ns() - start)
    shown = [line for line in lines if line.strip()]
    # The prompt after the token's line: "$ " trimmed, and marked with the
    # cursor on the MCP side.
    if len(shown) < 2 or shown[-2] != token or not shown[-1].startswith(h.PROMPT_LINE):
        wrong.append(f"{token}: {shown[-3:]}")


async def measure(addr: str, rounds: int) -> None:
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "wsh", "mcp", "--addr", addr], cwd=h.REPO
    )
    async with AsyncClient(addr) as direct, Client(stdio_client(server)) as agent:
        probes = {"direct": direct_probe(direct), "mcp": mcp_probe(agent)}
        samples: dict[str, list[int]] = {name: [] for name in probes}
        wrong: dict[str, list[str]] = {name: [] for name in probes}
        for probe in probes.values():
            for _ in range(WARMUP_RUNS):
                await timed(probe, [], [])
        pid = mcp_server_pid()
        cpu_before = cpu_ms(pid)
        for i in h.bounded(rounds, RUN_S):
            # Turns alternate so that neither side always runs right after the other.
            order = list(probes.items()) if i % 2 == 0 else list(reversed(probes.items()))
            for name, probe in order:
                await timed(probe, samples[name], wrong[name])
        # The wsh mcp process works only for the MCP turns.
        cpu_per_call = (cpu_ms(pid) - cpu_before) / len(samples["mcp"])
    over_mcp, straight = h.Stats.of(samples["mcp"]), h.Stats.of(samples["direct"])
    overhead = over_mcp.median - straight.median
    h.print_table(
        f"mcp: run tool over stdio vs the SDK's run(), {straight.n} runs each",
        [
            h.ratio_row("median, run", over_mcp.median, straight.median, "ms", None),
            h.ratio_row("p99,    run", over_mcp.p99, straight.p99, "ms", None),
            h.limit_row("median overhead of MCP", overhead, "ms", TARGET_OVERHEAD_MS),
            h.limit_row("CPU of wsh mcp per run call", cpu_per_call, "ms", None),
        ],
        peer_name="sdk",
        wsh_name="mcp",
    )
    for name in probes:
        print(f"{name} answers without the token and the prompt after it: "
              f"{len(wrong[name])}/{len(samples[name])} {wrong[name][:3]}")  # fmt: skip


def main() -> None:
    args = h.parse_args(__doc__ or "")
    with h.bench_run("mcp-overhead") as (stack, scratch):
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        h.create_shell(hub, SESSION)
        asyncio.run(measure(hub_proc.addr, QUICK_ROUNDS if args.quick else ROUNDS))


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as err:
        raise SystemExit(f"mcp-overhead: {err}") from None
