"""Fast unit tests of the domain pieces and API helpers (no server process)."""

from __future__ import annotations

import asyncio
import time

import pytest

from wsh.api import limits
from wsh.api.limits import AuthFailures, StreamLimits, peer_key
from wsh.api.race import SettleQueue
from wsh.errors import Kind, WshError
from wsh.names import is_valid_hostname, is_valid_session_name, is_valid_tag
from wsh.sessions.activity import Activity
from wsh.v1 import types_pb2


def idle(server: str, session: str, generation: int) -> types_pb2.Idle:
    return types_pb2.Idle(server=server, session=session, generation=generation)


async def test_settle_queue_keeps_one_entry_per_session_in_settle_order() -> None:
    queue = SettleQueue()
    queue.put(idle("a", "s1", 1))
    queue.put(idle("a", "s2", 1))
    queue.put(idle("a", "s1", 2))  # settled again: replaces, moves to the back
    queue.put(idle("b", "s1", 7))  # same name on another server is another session
    got = [await queue.get() for _ in range(3)]
    assert [(i.server, i.session, i.generation) for i in got] == [
        ("a", "s2", 1),
        ("a", "s1", 2),
        ("b", "s1", 7),
    ]
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    queue.put(idle("c", "late", 3))
    assert (await asyncio.wait_for(waiter, 1)).session == "late"


def test_peer_key_drops_the_port() -> None:
    assert peer_key("ipv4:10.1.2.3:5555") == "ipv4:10.1.2.3"
    assert peer_key("ipv6:[::1]:5555") == "ipv6:[::1]"
    assert peer_key("unix:/tmp/x.sock") == "unix"


def test_stream_limits_cap_per_peer_and_release() -> None:
    caps = StreamLimits()
    cap = StreamLimits.CAPS["Link"]
    held = [caps.hold("ipv4:1.1.1.1:1", "Link") for _ in range(cap)]
    for h in held:
        h.__enter__()
    with pytest.raises(WshError) as info, caps.hold("ipv4:1.1.1.1:2", "Link"):
        pass
    assert info.value.reason == "TOO_MANY_STREAMS"
    with caps.hold("ipv4:2.2.2.2:1", "Link"):  # another client is not affected
        assert caps.total("Link") == cap + 1
    for h in held:
        h.__exit__(None, None, None)
    assert caps.total("Link") == 0


def test_auth_failures_throttle_one_peer_only_and_decay(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    failures = AuthFailures()
    for _ in range(limits.AUTH_FAILURES_ALLOWED):
        failures.check("ipv4:6.6.6.6:1")
        failures.failed("ipv4:6.6.6.6:1")
    with pytest.raises(WshError) as info:
        failures.check("ipv4:6.6.6.6:9")
    assert info.value.reason == "AUTH_RATE_LIMITED"
    failures.check("ipv4:7.7.7.7:1")  # others are not slowed down
    now[0] += limits.AUTH_WINDOW_S
    failures.check("ipv4:6.6.6.6:9")  # forgiven after a quiet window


def test_auth_failures_remember_a_bounded_number_of_peers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_TRACKED_PEERS", 50)
    failures = AuthFailures()
    for i in range(500):
        failures.failed(f"ipv4:10.0.{i // 250}.{i % 250}:1")
    assert len(failures._peers) == 50


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("build-1", True),
        ("a.b_c", True),
        ("名前", True),
        ("", False),
        ("a b", False),
        ("x" * 64, True),
        ("x" * 65, False),
        ("é" * 33, False),
        ("a/b", False),
        ("a\0", False),
    ],
)
def test_session_name_rule(name: str, ok: bool) -> None:
    assert is_valid_session_name(name) is ok
    assert is_valid_tag(name) is ok


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("hub", True),
        ("build-1.example", True),
        ("-bad", False),
        ("bad-", False),
        ("a..b", False),
        ("a_b", False),
        ("x" * 64, False),
        ("ü", False),
    ],
)
def test_hostname_rule(host: str, ok: bool) -> None:
    assert is_valid_hostname(host) is ok


async def test_activity_idle_semantics() -> None:
    activity = Activity()
    activity.last_activity -= 1  # quiet for a second already
    started = time.monotonic()
    assert await activity.wait_idle(200, None, fresh=False) == 0
    assert time.monotonic() - started < 0.1
    # fresh: a full timeout of silence from now, even when already idle
    started = time.monotonic()
    await activity.wait_idle(200, None, fresh=True)
    assert time.monotonic() - started >= 0.2
    # last_generation equal to the current one: wait for new activity first
    waiter = asyncio.ensure_future(activity.wait_idle(50, activity.generation, fresh=False))
    await asyncio.sleep(0.15)
    assert not waiter.done()
    activity.touch()
    assert await asyncio.wait_for(waiter, 1) == 1
    # a stale last_generation has no effect
    assert await asyncio.wait_for(activity.wait_idle(10, 0, fresh=False), 1) == 1


async def test_activity_touches_postpone_idle_and_close_fails_waiters() -> None:
    activity = Activity()
    waiter = asyncio.ensure_future(activity.wait_idle(150, None, fresh=False))
    for _ in range(4):
        await asyncio.sleep(0.05)
        activity.touch()
    assert not waiter.done()
    assert await asyncio.wait_for(waiter, 1) == 4
    pending = asyncio.ensure_future(activity.wait_idle(10_000, None, fresh=True))
    await asyncio.sleep(0.01)
    activity.close(WshError(Kind.NOT_FOUND, "SESSION_NOT_FOUND", "gone"))
    with pytest.raises(WshError):
        await asyncio.wait_for(pending, 1)
