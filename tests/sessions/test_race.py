"""Unit tests of LocalRace on real PTYs: order, scope, skips and exited sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.sessions.test_manager import WAIT_S, exited
from wsh.sessions.manager import SessionManager
from wsh.sessions.race import LocalRace
from wsh.sessions.session import Session
from wsh.terminal.foreground import Foreground

QUIET_MS = 100


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    sessions = SessionManager("unit")
    try:
        yield sessions
    finally:
        await asyncio.wait_for(sessions.close_all(), WAIT_S)


class Collector:
    def __init__(self) -> None:
        self.settles: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    def __call__(
        self, session: Session, generation: int, foreground: Foreground | None = None
    ) -> None:
        self.settles.put_nowait((session.name, generation))

    async def next(self) -> tuple[str, int]:
        return await asyncio.wait_for(self.settles.get(), WAIT_S)

    async def nothing_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.settles.empty(), self.settles.get_nowait()


async def test_sessions_settle_in_order_and_once_per_generation(
    manager: SessionManager,
) -> None:
    slow = manager.create(name="slow", command="sleep 0.6; echo late; exec cat", tags=["t"])
    manager.create(name="other", command="cat", tags=["u"])
    got = Collector()
    race = LocalRace(manager, got, tags=["t"], timeout_ms=QUIET_MS)
    try:
        assert race.start() == 1
        first = await got.next()
        assert first[0] == "slow"
        second = await got.next()
        assert second[0] == "slow" and second[1] > first[1]
        assert "late" in slow.view(False).lines
        # Retagged into scope while the race runs: it joins.
        manager.update("other", add_tags=["t"])
        assert (await got.next())[0] == "other"
        await got.nothing_for(0.3)
    finally:
        await race.close()


async def test_skip_holds_a_session_until_it_moves(manager: SessionManager) -> None:
    session = manager.create(name="s", command="cat", tags=["t"])
    await asyncio.sleep(QUIET_MS / 1000 * 2)
    seen = session.activity.generation
    got = Collector()
    race = LocalRace(manager, got, tags=["t"], timeout_ms=QUIET_MS, skip={"s": seen})
    try:
        race.start()
        await got.nothing_for(0.3)
        session.send(b"x\n")
        name, generation = await got.next()
        assert name == "s" and generation > seen
    finally:
        await race.close()


async def test_an_exited_session_is_reported_once(manager: SessionManager) -> None:
    session = manager.create(name="gone", command="echo bye", tags=["t"])
    await exited(manager, session)
    got = Collector()
    race = LocalRace(manager, got, tags=["t"], timeout_ms=QUIET_MS)
    try:
        assert race.start() == 1
        assert await got.next() == ("gone", session.activity.generation)
        # A change that moves it in and out of scope does not report it again.
        manager.update("gone", remove_tags=["t"])
        manager.update("gone", add_tags=["t"])
        await got.nothing_for(0.3)
    finally:
        await race.close()
    skipped = LocalRace(
        manager,
        got,
        tags=["t"],
        timeout_ms=QUIET_MS,
        skip={"gone": session.activity.generation},
    )
    try:
        assert skipped.start() == 0
    finally:
        await skipped.close()
