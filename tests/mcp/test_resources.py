"""Screen resource URIs, and the watches that publish a screen's updates: against
a real hub where the hub can make the event, else against a fake stream (resync,
reopening, health changes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Self, cast

import grpc
import pytest

from tests.procs import ServerProc
from wsh.client import AsyncClient, WshRpcError
from wsh.mcp import resources
from wsh.mcp.resources import ScreenUri, ScreenWatches, TooManyWatches, parse_uri
from wsh.mcp.screens import screen_text
from wsh.v1 import hub_pb2

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


W = hub_pb2
Event = hub_pb2.WatchSessionsResponse
HOST = "mcp-hub"
RPC_S = 15.0


class Published:
    def __init__(self) -> None:
        self.uris: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self, uri: str) -> None:
        await self.uris.put(uri)

    async def next(self) -> str:
        return await asyncio.wait_for(self.uris.get(), WAIT_S)

    def drained(self) -> list[str]:
        uris = []
        while not self.uris.empty():
            uris.append(self.uris.get_nowait())
        return uris


# --- Against a real hub --------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("hub")
    with ServerProc(HOST, "--config", str(tmp / "hub.toml"), log_path=tmp / "hub.log") as hub:
        yield hub.addr


@pytest.fixture
async def client(hub_addr: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(hub_addr, timeout=RPC_S) as opened:
        yield opened


async def started(client: AsyncClient, name: str, command: str) -> ScreenUri:
    """A new session on the hub, once its start has settled."""
    await client.create_session(name, command=command)
    await client.await_idle(name, max_wait_ms=10_000)
    return ScreenUri(HOST, name)


async def test_a_change_is_published_once_its_output_has_settled(client: AsyncClient) -> None:
    screen = await started(client, "settles", "cat")
    published = Published()
    watches = ScreenWatches(client, published)
    watches.acquire(screen)
    assert await watches.synced()
    await client.send_input("settles", "echo-me\n")
    assert await published.next() == screen.uri
    assert "echo-me" in screen_text(await client.get_screen("settles"))
    await watches.close()
    await client.kill_session("settles")


async def test_one_stream_serves_every_screen_until_the_last_release(
    client: AsyncClient,
) -> None:
    watches = ScreenWatches(client, Published())
    a, b = ScreenUri(HOST, "a"), ScreenUri("elsewhere", "b")
    watches.acquire(a)
    watches.acquire(a)
    watches.acquire(b)
    stream = watches._stream
    assert stream is not None and await watches.synced()
    watches.release(a)
    watches.release(b)
    await asyncio.sleep(0)
    assert watches._stream is stream and not stream.done()
    assert len(watches) == 1
    watches.release(a)
    await asyncio.wait_for(asyncio.gather(stream, return_exceptions=True), WAIT_S)
    assert stream.cancelled() and watches._stream is None and len(watches) == 0
    watches.acquire(b)  # a new first subscriber opens a new stream
    assert watches._stream is not None and watches._stream is not stream
    assert await watches.synced()
    await watches.close()
    assert watches._stream is None and not watches._stopping


async def test_an_exit_is_published(client: AsyncClient) -> None:
    # It exits a second after its input's echo settled: nothing but the exit
    # reports the screen then.
    screen = await started(client, "exits", "sh -c 'read line; sleep 1; exit 3'")
    published = Published()
    watches = ScreenWatches(client, published)
    watches.acquire(screen)
    assert await watches.synced()
    await client.send_input("exits", "bye\n")
    while True:
        assert await published.next() == screen.uri
        session = await client.get_session("exits")
        if session.HasField("exit_code"):
            break
    assert session.exit_code == 3
    await watches.close()
    await client.kill_session("exits")


async def test_a_session_killed_is_published_and_stays_subscribed_but_not_live(
    client: AsyncClient,
) -> None:
    screen = await started(client, "killed", "cat")
    published = Published()
    watches = ScreenWatches(client, published)
    watches.acquire(screen)
    assert await watches.synced()
    await client.kill_session("killed")
    assert await published.next() == screen.uri
    assert not watches._watches[screen.uri].live
    assert len(watches) == 1  # until its subscriber releases it
    watches.release(screen)
    assert len(watches) == 0
    await watches.close()


async def test_a_rename_is_published_for_the_name_left_and_the_name_taken(
    client: AsyncClient,
) -> None:
    old = await started(client, "before", "cat")
    new = ScreenUri(HOST, "after")
    published = Published()
    watches = ScreenWatches(client, published)
    watches.acquire(old)
    watches.acquire(new)
    assert await watches.synced()
    assert not watches._watches[new.uri].live  # not in the snapshot
    await client.update_session("before", new_name="after")
    assert [await published.next(), await published.next()] == [old.uri, new.uri]
    assert not watches._watches[old.uri].live
    assert watches._watches[new.uri].live
    await watches.close()
    await client.kill_session("after")


# --- Against a fake stream -------------------------------------------------------------


def event(kind: int, session: str = "", server: str = "h", **fields: Any) -> Event:
    return Event(event=kind, server=server, session=session, **fields)  # type: ignore[arg-type]


def snapshot(*sessions: str, resync: bool = False) -> list[Event]:
    return [
        event(W.WATCH_EVENT_SERVER, resync=resync),
        *(event(W.WATCH_EVENT_SESSION, name, quiet=True, resync=resync) for name in sessions),
        event(W.WATCH_EVENT_SYNCED, server="", resync=resync),
    ]


def error(reason: str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> WshRpcError:
    return WshRpcError(code, reason, reason.lower())


class FakeStream:
    """A WatchSessions stream: its events, then an error if one was given, else
    events put later (``fed``)."""

    def __init__(self, events: list[Event], end: Exception | None) -> None:
        self.fed: asyncio.Queue[Event] = asyncio.Queue()
        for item in events:
            self.fed.put_nowait(item)
        self.end = end

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self.fed.empty() and self.end is not None:
            raise self.end
        return await self.fed.get()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass


class FakeHub:
    """Each ``watch_sessions()`` opens the next stream of ``streams``; the
    last one is reopened for ever."""

    def __init__(self, *streams: FakeStream) -> None:
        self.streams = list(streams)
        self.opened: list[float] = []

    def watch_sessions(self) -> FakeStream:
        self.opened.append(time.monotonic())
        return self.streams.pop(0) if len(self.streams) > 1 else self.streams[0]


def watching(hub: FakeHub, published: Published, *screens: ScreenUri) -> ScreenWatches:
    watches = ScreenWatches(cast(AsyncClient, hub), published)
    for screen in screens:
        watches.acquire(screen)
    return watches


JOB, OTHER = ScreenUri("h", "job"), ScreenUri("h", "absent")


async def test_a_resync_publishes_each_screen_whose_session_existed_or_exists() -> None:
    live = FakeStream(snapshot("job"), None)
    published = Published()
    watches = watching(FakeHub(live), published, JOB, OTHER)
    assert await watches.synced()
    assert published.drained() == []  # the first snapshot is no change
    assert not watches._watches[OTHER.uri].live
    live.fed.put_nowait(event(W.WATCH_EVENT_SESSION_IDLE, "job", generation=9, quiet=True))
    assert await published.next() == JOB.uri
    for item in snapshot("job", resync=True):
        live.fed.put_nowait(item)
    assert await published.next() == JOB.uri
    live.fed.put_nowait(event(W.WATCH_EVENT_SESSION_CREATED, "absent"))
    assert await published.next() == OTHER.uri  # the resync published nothing else
    await watches.close()


async def test_a_failed_stream_is_reopened_with_backoff_and_every_screen_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resources, "RETRY_S", 0.01)
    monkeypatch.setattr(resources, "RETRY_MAX_S", 0.04)
    hub = FakeHub(
        FakeStream(snapshot("job"), error("SERVER_UNAVAILABLE")),
        *(FakeStream([], error("SERVER_UNAVAILABLE")) for _ in range(4)),
        FakeStream(snapshot("job"), None),
    )
    published = Published()
    watches = watching(hub, published, JOB)
    assert await published.next() == JOB.uri  # once the sixth stream has its snapshot
    gaps = [later - earlier for earlier, later in zip(hub.opened, hub.opened[1:], strict=False)]
    assert len(gaps) == 5
    for gap, least in zip(gaps, (0.01, 0.02, 0.04, 0.04, 0.04), strict=True):
        assert gap >= least
    assert published.drained() == []
    await watches.close()


async def test_a_screen_busy_without_a_pause_is_published_on_each_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resources, "BUSY_REPORT_S", 0.05)
    live = FakeStream(snapshot(), None)
    published = Published()
    watches = watching(FakeHub(live), published, JOB)
    assert await watches.synced()
    live.fed.put_nowait(event(W.WATCH_EVENT_SESSION_BUSY, "job", generation=4))
    assert [await published.next(), await published.next()] == [JOB.uri, JOB.uri]
    live.fed.put_nowait(event(W.WATCH_EVENT_SESSION_IDLE, "job", generation=90, quiet=True))
    await asyncio.sleep(0.01)
    assert not watches._watches[JOB.uri].busy
    await watches.close()


async def test_a_server_health_change_publishes_its_screens() -> None:
    live = FakeStream(snapshot("job"), None)
    published = Published()
    elsewhere = ScreenUri("other", "job")
    watches = watching(FakeHub(live), published, JOB, elsewhere)
    assert await watches.synced()
    live.fed.put_nowait(event(W.WATCH_EVENT_SERVER_HEALTH_CHANGED))
    live.fed.put_nowait(event(W.WATCH_EVENT_SESSION_EXITED, "job", server="other"))
    assert [await published.next(), await published.next()] == [JOB.uri, elsewhere.uri]
    await watches.close()


async def test_watches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "MAX_WATCHES", 2)
    watches = watching(FakeHub(FakeStream([], None)), Published())
    watches.acquire(ScreenUri("h", "a"))
    watches.acquire(ScreenUri("h", "b"))
    watches.acquire(ScreenUri("h", "a"))  # one more subscriber of a watched screen
    with pytest.raises(TooManyWatches):
        watches.acquire(ScreenUri("h", "c"))
    await watches.close()
