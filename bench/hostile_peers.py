"""Peer attacks for ``bench/hostile.py``: clients that try to starve or confuse
the server without a token, or from the address good clients use (issue 15,
items 3 to 6).

The probe of ``hostile.py`` calls GetServerInfo with the token from
127.0.0.1, the same address as every attack here: a failed probe means a
good client was refused or starved.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import time
from pathlib import Path

import _hostile as hx
import grpc

from tests.peers import closed_by_server, idle_connections, rapid_reset
from wsh.v1 import hub_pb2

IDLE_CONNECTIONS = 1100  # above a soft open-file limit of 1,024
IDLE_HOLD_S = 12.0
PROBE_CONNECTS_S = 2.0
RESET_CONNECTIONS = 40
RESET_SPAN_S = 18.0
RESETS_PER_CONNECTION = 10_000
BOMBS = 120  # the client's own gzip takes most of the time
BOMB_CONCURRENCY = 8
BOMB_INFLATED = 15 * 1024 * 1024  # one message: 15 MiB of "a", about 15 KiB of gzip
MALFORMED_CALLS = 2000
WRONG_TOKEN_CALLS = 40
WRONG_TOKEN_SPAN_S = 10.0
CALL_TIMEOUT_S = 10.0
GARBAGE = b"\xff\xff\xff\xff\x0f"


def _log_bytes(workdir: Path) -> int:
    return sum(p.stat().st_size for p in workdir.glob("*.log"))


def _codes(counter: collections.Counter[str]) -> str:
    return " ".join(f"{code}={n}" for code, n in counter.most_common())


async def _raw_calls(
    target: hx.Target,
    method: str,
    body: bytes,
    count: int,
    concurrency: int,
    metadata: tuple[tuple[str, str], ...] = (),
    compression: grpc.Compression | None = None,
) -> collections.Counter[str]:
    """``count`` unary calls of ``method`` with ``body`` as is; their status codes."""
    codes: collections.Counter[str] = collections.Counter()
    async with grpc.aio.insecure_channel(target.address) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                try:
                    await call(
                        body, metadata=metadata, compression=compression, timeout=CALL_TIMEOUT_S
                    )
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as err:
                    codes[err.code().name] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return codes


async def idle_connection_flood(target: hx.Target) -> str:
    """1,100 TCP connections that never send a byte, held for 8 s."""

    # The server inherits this process's limits; the attacker needs more
    # descriptors than the server's soft limit (run under
    # ``prlimit --nofile=1024:HARD`` to replay the original finding).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 64 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (IDLE_CONNECTIONS + 64, hard))

    def hold() -> str:
        # The probe is a client already connected: a new one would find the
        # connection slots taken until the handshake timeout frees them.
        time.sleep(PROBE_CONNECTS_S)
        with idle_connections(target.address, IDLE_CONNECTIONS) as socks:
            time.sleep(0.5)
            refused = sum(closed_by_server(s) for s in socks)
            time.sleep(IDLE_HOLD_S)
            dropped = sum(closed_by_server(s) for s in socks)
        return (
            f"{IDLE_CONNECTIONS} idle: {refused} refused at once, "
            f"{dropped} closed after {IDLE_HOLD_S:.0f}s"
        )

    return await asyncio.to_thread(hold)


async def rapid_reset_flood(target: hx.Target) -> str:
    """40 connections, one after another, that open and reset GetServerInfo
    streams at once (up to 10,000 each), no token."""

    def attack() -> str:
        deadline = time.monotonic() + RESET_SPAN_S
        results = []
        while len(results) < RESET_CONNECTIONS and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            results.append(rapid_reset(target.address, RESETS_PER_CONNECTION, time_limit_s=left))
        sent = sum(r.resets_sent for r in results)
        cut = sum(r.closed or r.goaway for r in results)
        return f"{sent} resets on {len(results)} connections, {cut} cut by the server"

    return await asyncio.to_thread(attack)


async def gzip_before_auth(target: hx.Target) -> str:
    """120 gzip bodies (15 KiB each, 15 MiB inflated), no token."""
    bomb = hub_pb2.SendInputRequest(name="x", data=b"a" * BOMB_INFLATED).SerializeToString()
    start = time.monotonic()
    codes = await _raw_calls(
        target,
        "/wsh.v1.HubService/SendInput",
        bomb,
        BOMBS,
        BOMB_CONCURRENCY,
        compression=grpc.Compression.Gzip,
    )
    return f"{BOMBS} bombs in {time.monotonic() - start:.1f}s: {_codes(codes)}"


async def malformed_bodies(target: hx.Target) -> str:
    """2,000 bodies that do not parse without a token, then 2,000 with it."""
    before = _log_bytes(target.workdir)
    anonymous = await _raw_calls(
        target, "/wsh.v1.HubService/GetServerInfo", GARBAGE, MALFORMED_CALLS, 16
    )
    signed = await _raw_calls(
        target,
        "/wsh.v1.HubService/GetServerInfo",
        GARBAGE,
        MALFORMED_CALLS,
        16,
        metadata=target.metadata(),
    )
    logged = _log_bytes(target.workdir) - before
    return f"no token: {_codes(anonymous)}; token: {_codes(signed)}; log +{logged} B"


async def wrong_token_flood(target: hx.Target) -> str:
    """40 wrong-token calls over 10 s from 127.0.0.1, the probe's address."""
    codes: collections.Counter[str] = collections.Counter()
    wrong = (("authorization", "Bearer wrong-token-guess-0000"),)
    async with grpc.aio.insecure_channel(target.address) as channel:
        call = channel.unary_unary(
            "/wsh.v1.HubService/GetServerInfo",
            request_serializer=None,
            response_deserializer=None,
        )
        for _ in range(WRONG_TOKEN_CALLS):
            try:
                await call(b"", metadata=wrong, timeout=CALL_TIMEOUT_S)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as err:
                codes[err.code().name] += 1
            await asyncio.sleep(WRONG_TOKEN_SPAN_S / WRONG_TOKEN_CALLS)
    return f"wrong token: {_codes(codes)} (probe failures = good calls refused)"


ATTACKS: hx.Attacks = [
    ("peers/idle-connections", idle_connection_flood),
    ("peers/rapid-reset", rapid_reset_flood),
    ("peers/gzip-before-auth", gzip_before_auth),
    ("peers/malformed-bodies", malformed_bodies),
    ("peers/wrong-token-same-ip", wrong_token_flood),
]
