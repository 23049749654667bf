"""Unit tests of read-your-writes: a forwarded change reaches the inventory before the answer."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.federation.test_registry import backend, info
from wsh.federation import writes
from wsh.federation.registry import Registry


@pytest.fixture
def registry() -> Registry:
    reg = Registry("hub")
    reg.add(backend(1, "be1"))
    return reg


async def test_waits_for_the_link_event(registry: Registry) -> None:
    be1 = registry.find("be1")
    created = info("new", "ci")

    async def link_event_later() -> None:
        await asyncio.sleep(0.05)
        be1.upsert(created)
        registry.changes.bump()

    event = asyncio.create_task(link_event_later())
    await asyncio.wait_for(writes.observe(registry, be1, "new", created), 5)
    assert event.done() and be1.sessions["new"] is created


async def test_a_missing_event_is_applied_from_the_answer(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes, "SYNC_TIMEOUT_S", 0.05)
    be1 = registry.find("be1")
    be1.upsert(info("old", "ci"))
    renamed = info("renamed", "ci", "more")
    version = registry.changes.version
    await asyncio.wait_for(writes.observe(registry, be1, "renamed", renamed, "old"), 5)
    assert set(be1.sessions) == {"renamed"} and registry.changes.version > version
    await asyncio.wait_for(writes.observe(registry, be1, "renamed", None), 5)
    assert be1.sessions == {}


async def test_an_inventory_already_showing_the_change_returns_at_once(
    registry: Registry,
) -> None:
    be1 = registry.find("be1")
    current = info("s", "a")
    be1.upsert(current)
    version = registry.changes.version
    # Only tags and size matter: activity moves on its own.
    later = dataclasses.replace(current, generation=current.generation + 7)
    await asyncio.wait_for(writes.observe(registry, be1, "s", later), 1)
    assert registry.changes.version == version
