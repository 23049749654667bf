"""Standard input and output as asyncio pipes, for the SDK's stdio transport.

The SDK reads each line and writes (then flushes) each answer in a worker
thread: three thread hand-overs per call, which on a busy machine cost more
than the rest of the MCP layer (``bench/mcp_overhead.py``). Here both ends are
event-loop pipes instead. While serving, fd 0 reads the null device and fd 1
writes to stderr, so stray output never reaches the wire (what the SDK does
too); both are restored at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Self

log = logging.getLogger("wsh.mcp")

# The longest message read: a send_input of the most text a tool takes
# (4 Mi characters), escaped as JSON (up to 6 bytes a character), fits.
MAX_LINE_BYTES = 32 * 1024 * 1024


class Lines:
    """Lines of text from a pipe, as the SDK's transport iterates a file."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        while True:
            try:
                line = await self._reader.readline()
            except ValueError:  # longer than MAX_LINE_BYTES: dropped, the rest goes on
                log.warning("dropped an MCP message over %d bytes", MAX_LINE_BYTES)
                continue
            if not line:
                raise StopAsyncIteration
            return line.decode("utf-8", "replace")


class Output:
    """A pipe written as the SDK's transport writes a file."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode())

    async def flush(self) -> None:
        await self._writer.drain()


@contextlib.asynccontextmanager
async def pipes() -> AsyncIterator[tuple[Lines, Output] | None]:
    """Standard input and output as :class:`Lines` and :class:`Output`, or None
    when they are not pipes, sockets or terminals (a regular file: use the SDK's)."""
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    transports: list[asyncio.BaseTransport] = []
    try:
        in_file = os.fdopen(wire_in, "rb", buffering=0)
        out_file = os.fdopen(wire_out, "wb", buffering=0)
        read, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), in_file
        )
        transports.append(read)
        # FlowControlMixin is the protocol asyncio's own streams give a
        # writer: drain() then waits while the pipe is full.
        write, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out_file)
        transports.append(write)
    except (OSError, ValueError):
        for transport in transports:
            transport.close()
        yield None
        return
    # The wire is on the duplicates now: point 0 and 1 away from it.
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    try:
        writer = asyncio.StreamWriter(write, protocol, None, loop)
        yield Lines(reader), Output(writer)
    finally:
        for transport in transports:
            transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
