"""What one attacher of a session receives: its raw output after a snapshot, bounded.

A session hands every chunk it reads from its PTY to each of its taps in the
same step as it queues the chunk for its emulator, and a snapshot empties a
tap in one step too (see ``Session.snapshot``), so the bytes a tap yields
after a snapshot are exactly those the emulator takes after it: nothing lost
or repeated. A tap never holds more than its buffer: past it, the pending
output is dropped and the tap asks for a new snapshot (a resync), so a slow
attacher costs the session and everyone else nothing but its own buffer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wsh.errors import WshError

# Output joined into one chunk at most: under the gRPC message limit whatever
# the buffer is set to, and small enough that a client sees output flow.
MAX_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Exited:
    """The process exited with ``code`` (negative: killed by that signal)."""

    code: int


class Resync:
    """The tap dropped output: take a new snapshot (``Session.snapshot``)."""


RESYNC = Resync()


class OutputTap:
    """One attacher's output queue; ``get`` it until it returns ``Exited``.

    Ends: ``Exited`` after all the output (the process exited), or ``get``
    raises the error the tap was ended with (a kill, a shutdown, the
    attacher's own refusal). ``detach`` ends it at once, with nothing more.
    """

    def __init__(self, buffer_bytes: int, on_close: Callable[[OutputTap], None]) -> None:
        self._limit = buffer_bytes
        self._on_close = on_close
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._behind = False  # output was dropped since the last snapshot
        self.resyncs = 0
        self._exited: Exited | None = None
        self._error: WshError | None = None
        self._detached = False
        self._wake = asyncio.Event()

    @property
    def pending_bytes(self) -> int:
        return self._size

    def put(self, data: bytes) -> None:
        """Output read from the PTY (the session's feeder calls this)."""
        if self._behind or self._exited or self._error or self._detached:
            return
        if self._size + len(data) > self._limit:
            self._chunks.clear()
            self._size = 0
            self._behind = True
            self.resyncs += 1
        else:
            self._chunks.append(data)
            self._size += len(data)
        self._wake.set()

    def restart(self, unfed: bytes) -> None:
        """Start over after a snapshot: ``unfed`` is the output the emulator
        has not taken yet, which comes first."""
        self._chunks.clear()
        self._size = 0
        self._behind = False
        if unfed:
            self._chunks.append(unfed)
            self._size = len(unfed)
            self._wake.set()

    def exited(self, code: int) -> None:
        """The process exited and all its output was put."""
        if self._exited is None:
            self._exited = Exited(code)
            self._wake.set()

    def fail(self, error: WshError) -> None:
        """End the tap with ``error``: pending output is dropped."""
        if self._error is None:
            self._error = error
            self._wake.set()

    def detach(self) -> None:
        """End the tap for good and unregister it from its session."""
        if not self._detached:
            self._detached = True
            self._chunks.clear()
            self._size = 0
            self._wake.set()
            self._on_close(self)

    @property
    def detached(self) -> bool:
        return self._detached

    async def get(self) -> bytes | Resync | Exited | None:
        """The next output (pending chunks joined), ``RESYNC``, ``Exited`` once
        all the output is out, or None once detached. Raises the error the
        tap was failed with."""
        while True:
            if self._error is not None:
                raise self._error
            if self._detached:
                return None
            if self._behind:
                return RESYNC
            if self._chunks:
                return self._take()
            if self._exited is not None:
                return self._exited
            self._wake.clear()
            await self._wake.wait()

    def _take(self) -> bytes:
        if len(self._chunks) == 1 and self._size <= MAX_CHUNK_BYTES:
            data = self._chunks.popleft()
        else:
            parts: list[bytes] = []
            taken = 0
            while self._chunks and taken < MAX_CHUNK_BYTES:
                part = self._chunks.popleft()
                room = MAX_CHUNK_BYTES - taken
                if len(part) > room:
                    self._chunks.appendleft(part[room:])
                    part = part[:room]
                parts.append(part)
                taken += len(part)
            data = b"".join(parts)
        self._size -= len(data)
        return data
