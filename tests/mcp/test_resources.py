"""Screen resource URIs, and the watches that publish a screen's updates."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc
import pytest

from wsh.client import AsyncClient, WshRpcError
from wsh.mcp import resources
from wsh.mcp.resources import ScreenUri, ScreenWatches, TooManyWatches, parse_uri
from wsh.v1 import types_pb2

WAIT_S = 5.0


def test_a_screen_uri_round_trips_names_that_need_quoting() -> None:
    for name in ("build", "日本.x-1", "a_b"):
        screen = ScreenUri("build-1", name)
        assert parse_uri(screen.uri) == screen
    assert ScreenUri("h", "日本").uri == "wsh://h/%E6%97%A5%E6%9C%AC/screen"


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "wsh://h/name",
        "wsh://h/name/scrollback",
        "wsh:///name/screen",
        "wsh://h//screen",
        "wsh://h/a/b/screen",
        "wsh://h/name/screen?x=1",
        "wsh://[bad/name/screen",
    ],
)
def test_other_uris_are_not_screens(uri: str) -> None:
    assert parse_uri(uri) is None


class FakeHub:
    """What a watch asks the hub: ``await_idle`` answers come from a queue."""

    def __init__(self, generation: int = 5, exit_code: int | None = None) -> None:
        self.generation = generation
        self.exit_code = exit_code
        self.answers: asyncio.Queue[types_pb2.Idle | Exception] = asyncio.Queue()
        self.waits: list[int | None] = []
        self.session_calls = 0

    async def get_session(self, name: str, *, server: str = "", **_: Any) -> types_pb2.Session:
        self.session_calls += 1
        session = types_pb2.Session(name=name, server=server, generation=self.generation)
        if self.exit_code is not None:
            session.exit_code = self.exit_code
        return session

    async def await_idle(self, name: str, *, last_generation: int | None, **_: Any) -> Any:
        self.waits.append(last_generation)
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        return answer


def error(reason: str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> WshRpcError:
    return WshRpcError(code, reason, reason.lower())


class Published:
    def __init__(self) -> None:
        self.uris: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self, uri: str) -> None:
        await self.uris.put(uri)

    async def next(self) -> str:
        return await asyncio.wait_for(self.uris.get(), WAIT_S)


SCREEN = ScreenUri("build-1", "job")


def watches(hub: FakeHub, published: Published) -> ScreenWatches:
    return ScreenWatches(cast(AsyncClient, hub), published)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_each_settled_change_is_published_and_the_next_wait_starts_past_it() -> None:
    hub, published = FakeHub(generation=5), Published()
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    await hub.answers.put(types_pb2.Idle(generation=8))
    assert await published.next() == SCREEN.uri
    await hub.answers.put(types_pb2.Idle(generation=11))
    assert await published.next() == SCREEN.uri
    await settle()
    assert hub.waits == [5, 8, 11]
    await watch.close()


async def test_the_last_release_cancels_the_watch() -> None:
    hub, published = FakeHub(), Published()
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    watch.acquire(SCREEN)
    await settle()
    task = watch._watches[SCREEN.uri].task
    watch.release(SCREEN)
    await settle()
    assert not task.done()
    watch.release(SCREEN)
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), WAIT_S)
    assert task.cancelled()
    assert len(watch) == 0


async def test_an_exited_session_is_published_once_then_no_longer_watched() -> None:
    hub, published = FakeHub(), Published()
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    await hub.answers.put(types_pb2.Idle(generation=9, exit_code=0))
    assert await published.next() == SCREEN.uri
    task = watch._watches[SCREEN.uri].task
    await asyncio.wait_for(task, WAIT_S)
    assert hub.waits == [5]
    await watch.close()


async def test_a_session_that_had_exited_already_is_not_waited_for() -> None:
    hub, published = FakeHub(exit_code=1), Published()
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    await asyncio.wait_for(watch._watches[SCREEN.uri].task, WAIT_S)
    assert hub.waits == []
    await watch.close()


async def test_a_session_gone_is_published_and_ends_the_watch() -> None:
    hub, published = FakeHub(), Published()
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    await hub.answers.put(error("SESSION_NOT_FOUND", grpc.StatusCode.NOT_FOUND))
    assert await published.next() == SCREEN.uri
    await asyncio.wait_for(watch._watches[SCREEN.uri].task, WAIT_S)
    await watch.close()


async def test_a_session_busy_past_the_wait_bound_is_published_when_it_changed() -> None:
    hub, published = FakeHub(generation=5), Published()
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    await settle()
    hub.generation = 40  # printing without a pause: it never settled
    await hub.answers.put(error("IDLE_TIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED))
    assert await published.next() == SCREEN.uri
    await settle()
    assert hub.waits == [5, 40]
    await watch.close()


async def test_a_quiet_session_past_the_wait_bound_is_not_published() -> None:
    hub, published = FakeHub(generation=5), Published()
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    await hub.answers.put(error("IDLE_TIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED))
    await settle()
    assert hub.waits == [5, 5]
    assert published.uris.empty()
    await watch.close()


async def test_failures_are_retried_with_backoff_never_in_a_tight_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resources, "RETRY_S", 0.05)
    hub, published = FakeHub(), Published()
    for _ in range(1000):
        hub.answers.put_nowait(error("SERVER_UNAVAILABLE"))
    watch = watches(hub, published)
    watch.acquire(SCREEN)
    await asyncio.sleep(0.5)
    # Sleeps of 0.05, 0.1, 0.2, 0.4 s: at most 5 asks in half a second.
    assert 1 <= len(hub.waits) <= 5
    await watch.close()


async def test_watches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "MAX_WATCHES", 2)
    watch = watches(FakeHub(), Published())
    watch.acquire(ScreenUri("h", "a"))
    watch.acquire(ScreenUri("h", "b"))
    watch.acquire(ScreenUri("h", "a"))  # one more subscriber of a watched screen
    with pytest.raises(TooManyWatches):
        watch.acquire(ScreenUri("h", "c"))
    await watch.close()
