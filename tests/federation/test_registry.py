"""Unit tests of the backend registry: lookups, routing, name holders and changes."""

from __future__ import annotations

import asyncio

import pytest

from wsh.errors import WshError
from wsh.federation.address import parse_backend_address
from wsh.federation.registry import Backend, Changes, Health, Registry
from wsh.sessions.info import SessionInfo, SessionState


def info(name: str, *tags: str, generation: int = 1, idle_ms: int = 0) -> SessionInfo:
    return SessionInfo(
        name=name,
        server="x",
        tags=tuple(sorted(tags)),
        command="cat",
        pid=1,
        rows=24,
        cols=80,
        state=SessionState.RUNNING,
        exit_code=None,
        generation=generation,
        created_at=0.0,
        last_activity_ms=idle_ms,
        cwd="/",
    )


def backend(port: int, hostname: str, health: Health = Health.HEALTHY) -> Backend:
    return Backend(
        address=parse_backend_address(f"http://127.0.0.1:{port}"),
        hostname=hostname,
        health=health,
    )


@pytest.fixture
def registry() -> Registry:
    reg = Registry("hub")
    reg.add(backend(1, "be1"))
    reg.add(backend(2, "be2"))
    return reg


def reason(err: pytest.ExceptionInfo[WshError]) -> str:
    return err.value.reason


def test_add_twice_and_remove(registry: Registry) -> None:
    with pytest.raises(WshError) as err:
        registry.add(backend(1, "again"))
    assert reason(err) == "SERVER_ALREADY_REGISTERED"
    be1 = registry.find("be1")
    be1.upsert(info("s"))
    version = registry.changes.version
    registry.remove(be1)
    assert registry.changes.version == version + 1
    assert be1.sessions == {} and [b.hostname for b in registry] == ["be2"]
    with pytest.raises(WshError) as err:
        registry.find("be1")
    assert reason(err) == "SERVER_NOT_FOUND"


def test_route_by_server(registry: Registry) -> None:
    assert registry.route("") is None and registry.route("hub") is None
    assert registry.route("be2") is registry.find("be2")
    with pytest.raises(WshError) as err:
        registry.route("nowhere")
    assert reason(err) == "SERVER_NOT_FOUND"
    registry.find("be1").health = Health.UNAVAILABLE
    with pytest.raises(WshError) as err:
        registry.route("be1")
    assert reason(err) == "SERVER_UNAVAILABLE" and err.value.metadata["server"] == "be1"


def test_route_by_name_finds_the_one_holder(registry: Registry) -> None:
    be1, be2 = registry.find("be1"), registry.find("be2")
    be1.upsert(info("job"))
    assert registry.route_name("job") is be1
    with pytest.raises(WshError) as err:
        registry.route_name("nothing")
    assert reason(err) == "SESSION_NOT_FOUND"
    be2.upsert(info("job"))
    with pytest.raises(WshError) as err:
        registry.route_name("job")
    assert reason(err) == "SESSION_AMBIGUOUS"
    assert err.value.metadata["servers"] == "be1, be2"


def test_a_down_holder_keeps_its_names(registry: Registry) -> None:
    be1, be2 = registry.find("be1"), registry.find("be2")
    be1.upsert(info("job"))
    be1.health = Health.UNAVAILABLE
    with pytest.raises(WshError) as err:
        registry.route_name("job")
    assert reason(err) == "SERVER_UNAVAILABLE"
    # Another backend claiming the name while the holder is down: ambiguous.
    be2.upsert(info("job"))
    with pytest.raises(WshError) as err:
        registry.route_name("job")
    assert reason(err) == "SESSION_AMBIGUOUS"
    # A rejected backend holds nothing.
    be1.health = Health.REJECTED
    assert registry.holders("job") == [be2]


def test_backend_inventory_upsert_rename_activity() -> None:
    be = backend(3, "be3")
    be.upsert(info("a", "ci", generation=4, idle_ms=2000))
    assert [s.name for s in be.sessions_matching(frozenset({"ci"}))] == ["a"]
    assert list(be.sessions_matching(frozenset({"other"}))) == []
    be.upsert(info("b", "ci", generation=5), previous_name="a")
    assert set(be.sessions) == {"b"}
    be.record_activity("b", 3, 0, False, "")  # older than what it has: ignored
    assert be.sessions["b"].generation == 5
    be.record_activity("b", 9, 50, True, "bash")
    assert be.sessions["b"].generation == 9
    assert (be.sessions["b"].ready, be.sessions["b"].foreground) == (True, "bash")
    be.record_activity("ghost", 9, 0, False, "")  # never announced: ignored
    assert "ghost" not in be.sessions


async def test_changes_wake_waiters() -> None:
    changes = Changes()
    seen = changes.version
    waiter = asyncio.create_task(changes.wait(seen))
    await asyncio.sleep(0)
    assert not waiter.done()
    changes.bump()
    assert await asyncio.wait_for(waiter, 5) == seen + 1
    # A version already past what the caller saw returns at once.
    assert await asyncio.wait_for(changes.wait(seen), 5) == seen + 1
