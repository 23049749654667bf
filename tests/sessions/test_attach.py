"""Output taps: bounded buffers, resyncs, ends; and on real PTYs, that a
snapshot plus the output after it repaints exactly the emulator's screen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wsh.errors import WshError, session_not_found
from wsh.sessions.attach import RESYNC, Exited, OutputTap
from wsh.sessions.manager import SessionManager
from wsh.sessions.session import Session
from wsh.terminal.screen import TerminalScreen

WAIT_S = 10.0


def tap(limit: int = 10) -> tuple[OutputTap, list[OutputTap]]:
    closed: list[OutputTap] = []
    return OutputTap(limit, closed.append), closed


async def test_output_in_order_then_the_exit() -> None:
    out, _ = tap()
    out.put(b"ab")
    out.put(b"cd")
    out.exited(3)
    out.put(b"late")  # nothing is taken after the exit was told
    assert await out.get() == b"abcd"
    assert await out.get() == Exited(3)


async def test_overflow_drops_everything_and_asks_for_a_resync() -> None:
    out, _ = tap(limit=5)
    out.put(b"abc")
    out.put(b"def")  # 6 > 5
    out.put(b"g")  # dropped too: behind until the next snapshot
    assert out.resyncs == 1
    assert out.pending_bytes == 0
    assert await out.get() is RESYNC
    out.restart(b"xy")  # what the emulator had not taken at the snapshot
    out.put(b"z")
    assert await out.get() == b"xyz"


async def test_fail_and_detach_end_at_once() -> None:
    out, closed = tap()
    out.put(b"a")
    out.fail(session_not_found("s"))
    with pytest.raises(WshError) as err:
        await out.get()
    assert err.value.reason == "SESSION_NOT_FOUND"
    other, closed = tap()
    other.put(b"a")
    waiter = asyncio.create_task(other.get())
    assert await waiter == b"a"
    waiter = asyncio.create_task(other.get())
    await asyncio.sleep(0)
    other.detach()
    assert await asyncio.wait_for(waiter, WAIT_S) is None
    assert closed == [other]


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    sessions = SessionManager("unit", max_attachers=2, attach_buffer_bytes=4096)
    try:
        yield sessions
    finally:
        await asyncio.wait_for(sessions.close_all(), WAIT_S)


async def drain(session: Session, out: OutputTap, screen: TerminalScreen) -> tuple[int, int]:
    """Feed ``screen`` with the tap's output and snapshots until the exit;
    returns (exit code, resyncs)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            item = await out.get()
            if isinstance(item, Exited):
                return item.code, out.resyncs
            if item is RESYNC:
                screen.feed(session.snapshot(out))
            elif isinstance(item, bytes):
                screen.feed(item)
            await asyncio.sleep(0)  # as a stream would, let the program run


@pytest.mark.parametrize("slow", [False, True])
async def test_snapshot_and_output_repaint_the_screen_exactly(
    manager: SessionManager, slow: bool
) -> None:
    """Attached while a program prints colours, a client's own emulator fed the
    snapshot then every chunk ends on the server's screen, also when its small
    buffer overflows (``slow``: it reads only once per loop turn)."""
    command = (
        "sleep 0.05; for i in $(seq 1 2000); do "
        "printf '\\033[3%dmline %d \\303\\251\\033[0m\\n' $((i % 7)) $i; done; exit 5"
    )
    exited = asyncio.Event()
    manager.subscribe(
        lambda event: event.info is not None and event.info.exit_code is not None and exited.set()
    )
    session = manager.create(command=command, rows=10, cols=40)
    if not slow:
        await asyncio.sleep(0.06)  # attach while it prints, most likely
    out = manager.attach(session)
    mine = TerminalScreen(10, 40)
    mine.feed(session.snapshot(out))
    if slow:
        # Let the whole output (40 KB, all after the attach) go by unread: a
        # real overflow of the 4 KiB buffer.
        await asyncio.wait_for(exited.wait(), WAIT_S)
    code, resyncs = await drain(session, out, mine)
    assert code == 5
    if slow:
        assert resyncs >= 1
    assert mine.view(True).styled_lines == session.view(True).styled_lines
    assert mine.view(False).cursor == session.view(False).cursor
    assert "line 2000 é" in "\n".join(mine.view(False).lines)


async def test_attachers_are_limited_per_session_and_counted(manager: SessionManager) -> None:
    session = manager.create(command="cat")
    first, second = manager.attach(session), manager.attach(session)
    with pytest.raises(WshError) as err:
        manager.attach(session)
    assert err.value.reason == "TOO_MANY_ATTACHERS"
    first.detach()
    assert session.attachers == 1
    third = manager.attach(session)
    await manager.kill(session.name)
    for out in (second, third):
        with pytest.raises(WshError) as err:
            await asyncio.wait_for(out.get(), WAIT_S)
        assert err.value.reason == "SESSION_NOT_FOUND"
