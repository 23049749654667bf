"""Output attacks for ``bench/hostile.py``: a session's program prints bytes
chosen to make the terminal emulation, the styled rendering or the history
expensive (issue 15, items 1 and 2).

Each attack writes its payload to a file and runs a session whose command
``cat``s it, then prints ``ESC c ~`` (reset, then a marker that none of the
payloads contain); the attack is over once the marker is on screen.
"""

from __future__ import annotations

import asyncio
import time

import _hostile as hx
import grpc

from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

MARKER = "~"
STYLED = types_pb2.SCREEN_FORMAT_STYLED
BIG = 64 * 1024 * 1024  # client-side message limit, to see oversized responses


def _colored_cells(count: int, seed: int = 0) -> bytes:
    """``count`` cells, each with its own 24-bit foreground and background."""
    out = []
    for i in range(count):
        v = (i * 2654435761 + seed) & 0xFFFFFF
        w = v ^ 0x5A5A5A
        out.append(
            f"\x1b[38;2;{v >> 16};{(v >> 8) & 255};{v & 255};"
            f"48;2;{w >> 16};{(w >> 8) & 255};{w & 255}m{chr(0x41 + i % 26)}"
        )
    return "".join(out).encode()


async def _play(
    target: hx.Target,
    rows: int,
    cols: int,
    payload: bytes,
    name: str = "victim",
    then: str = f"printf '\\033c{MARKER}'",
    wait_s: float = 25.0,
) -> tuple[float, int]:
    """Run ``cat payload; then`` in a new session and wait for the marker.

    Returns (seconds until the marker showed, or -1, generation).
    """
    path = hx.pty_payload_file(target.workdir, f"{name}.bin", payload)
    md = target.metadata()
    async with target.hub() as hub:
        start = time.monotonic()
        await hub.CreateSession(
            hub_pb2.CreateSessionRequest(
                name=name,
                command=f"cat {path}; {then}; exec sleep 120",
                rows=rows,
                cols=cols,
            ),
            metadata=md,
            timeout=30,
        )
        deadline = start + wait_s
        while time.monotonic() < deadline:
            try:
                resp = await hub.GetScreen(
                    hub_pb2.GetScreenRequest(name=name), metadata=md, timeout=wait_s
                )
            except grpc.aio.AioRpcError:
                return -1.0, 0
            if resp.screen.lines and resp.screen.lines[0] == MARKER:
                return time.monotonic() - start, resp.screen.generation
            await asyncio.sleep(0.05)
        return -1.0, 0


def _done(seconds: float, what: str) -> str:
    return f"{what}: marker after {seconds:.1f}s" if seconds >= 0 else f"{what}: marker never came"


def _stream(sequence: str, size: int, lead: str = "") -> bytes:
    unit = sequence.encode()
    return lead.encode() + unit * (size // len(unit))


async def baseline(target: hx.Target) -> str:
    """No attack: a session printing 64 KiB of plain text, for the noise floor."""
    seconds, _ = await _play(target, 24, 80, _stream("plain text\r\n", 65536))
    await asyncio.sleep(3)
    return _done(seconds, "64 KiB of plain lines at 24x80, then 3 s idle (reference)")


async def rep_1x1(target: hx.Target) -> str:
    seconds, _ = await _play(target, 1, 1, _stream("A\x1b[65535b", 4096))
    return _done(seconds, "4 KiB of 'A ESC[65535b' at 1x1")


async def rep_24x80(target: hx.Target) -> str:
    seconds, _ = await _play(target, 24, 80, _stream("A\x1b[65535b", 65536))
    return _done(seconds, "64 KiB of 'A ESC[65535b' at 24x80")


async def rep_8_sessions(target: hx.Target) -> str:
    """Eight sessions at once, each with 16 KiB of REP: the budget is the loop's."""
    payload = _stream("A\x1b[65535b", 16384)
    results = await asyncio.gather(
        *(_play(target, 24, 80, payload, name=f"victim{i}") for i in range(8))
    )
    slowest = max(seconds for seconds, _ in results)
    if min(seconds for seconds, _ in results) < 0:
        return "8 x 16 KiB of 'A ESC[65535b' at 24x80: a marker never came"
    return f"8 x 16 KiB of 'A ESC[65535b' at 24x80: all markers after {slowest:.1f}s"


async def su_24x80(target: hx.Target) -> str:
    seconds, _ = await _play(target, 24, 80, _stream("\x1b[65535S", 65536, "\x1b[31m"))
    return _done(seconds, "64 KiB of ESC[65535S at 24x80")


async def dl_24x80(target: hx.Target) -> str:
    seconds, _ = await _play(target, 24, 80, _stream("\x1b[65535M", 65536))
    return _done(seconds, "64 KiB of ESC[65535M at 24x80")


async def ris_24x80(target: hx.Target) -> str:
    seconds, _ = await _play(target, 24, 80, _stream("\x1bc", 65536))
    return _done(seconds, "64 KiB of ESC c at 24x80")


async def decaln_1000(target: hx.Target) -> str:
    seconds, _ = await _play(target, 1000, 1000, _stream("\x1b#8", 2048))
    return _done(seconds, "2 KiB of ESC#8 at 1000x1000")


async def su_1000(target: hx.Target) -> str:
    seconds, _ = await _play(target, 1000, 1000, _stream("\x1b[65535S", 2048, "\x1b[31m"))
    return _done(seconds, "2 KiB of ESC[65535S at 1000x1000")


async def styled_screen(target: hx.Target) -> str:
    """A 200x1000 screen, every cell its own colours, read styled."""
    rows, cols = 200, 1000
    payload = b"\x1b[H" + _colored_cells(rows * cols - 1)
    await _play(target, rows, cols, payload, then="sleep 1")
    md = target.metadata()
    async with target.hub([("grpc.max_receive_message_length", BIG)]) as hub:
        start = time.monotonic()
        try:
            resp = await hub.GetScreen(
                hub_pb2.GetScreenRequest(name="victim", format=STYLED), metadata=md, timeout=60
            )
            result = f"{resp.ByteSize() / 1e6:.1f} MB"
        except grpc.aio.AioRpcError as err:
            result = f"{err.code().name}"
        took = time.monotonic() - start
    return f"styled GetScreen of 200x1000 coloured cells: {result} in {took:.2f}s"


async def styled_scrollback(target: hx.Target) -> str:
    """1,100 lines of 1,000 coloured cells, then a styled page of 1,000 lines."""
    line = hx.pty_payload_file(target.workdir, "line.bin", _colored_cells(1000) + b"\r\n")
    loop = f"i=0; while [ $i -lt 1100 ]; do cat {line}; i=$((i+1)); done"
    seconds, _ = await _play(target, 24, 1000, b"", then=f"{loop}; printf '\\033c{MARKER}'")
    md = target.metadata()
    async with target.hub([("grpc.max_receive_message_length", BIG)]) as hub:
        start = time.monotonic()
        try:
            resp = await hub.GetScrollback(
                hub_pb2.GetScrollbackRequest(name="victim", limit=1000, format=STYLED),
                metadata=md,
                timeout=60,
            )
            result = f"{len(resp.styled_lines)} lines, {resp.ByteSize() / 1e6:.1f} MB"
        except grpc.aio.AioRpcError as err:
            result = f"{err.code().name}: {(err.details() or '')[:60]}"
        took = time.monotonic() - start
    return f"{_done(seconds, 'history')}; styled GetScrollback(1000): {result} in {took:.2f}s"


async def race_streams(target: hx.Target) -> str:
    """40 styled RaceIdle streams that never read, on a 200x1000 coloured screen
    whose program keeps changing one cell."""
    rows, cols = 200, 1000
    payload = b"\x1b[H" + _colored_cells(rows * cols - 1)
    tick = "while :; do printf '\\033[H%s' $((i=(i+1)%10)); sleep 0.05; done"
    path = hx.pty_payload_file(target.workdir, "screen.bin", payload)
    await _play(
        target, rows, cols, b"", then=f"printf '\\033c{MARKER}'; sleep 0.5; cat {path}; {tick}"
    )
    md = target.metadata()
    calls = []
    channels = []
    for _ in range(40):
        channel = grpc.aio.insecure_channel(target.address)
        channels.append(channel)
        stub = hub_pb2_grpc.HubServiceStub(channel)
        calls.append(
            stub.RaceIdle(
                hub_pb2.RaceIdleRequest(timeout_ms=20, max_wait_ms=60_000, format=STYLED),
                metadata=md,
            )
        )
    await asyncio.sleep(8)
    for call in calls:
        call.cancel()
    for channel in channels:
        await channel.close(grace=None)
    return "40 styled RaceIdle streams, never read, for 8s"


ATTACKS: hx.Attacks = [
    ("output/baseline", baseline),
    ("output/rep-1x1", rep_1x1),
    ("output/rep-24x80", rep_24x80),
    ("output/rep-8-sessions", rep_8_sessions),
    ("output/su-24x80", su_24x80),
    ("output/dl-24x80", dl_24x80),
    ("output/ris-24x80", ris_24x80),
    ("output/decaln-1000x1000", decaln_1000),
    ("output/su-1000x1000", su_1000),
    ("output/styled-screen-200x1000", styled_screen),
    ("output/styled-scrollback", styled_scrollback),
    ("output/race-40-streams", race_streams),
]
