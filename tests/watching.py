"""A WatchSessions stream read on a thread, for tests to wait on its events."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Self

from wsh.client import Client, WatchStream, WshRpcError
from wsh.v1 import hub_pb2

Event = hub_pb2.WatchSessionsResponse
NAMES = {value: name.removeprefix("WATCH_EVENT_") for name, value in hub_pb2.WatchEvent.items()}


def describe(event: Event) -> str:
    return f"{NAMES[event.event]} {event.server}/{event.session}".rstrip("/")


class Watching:
    """``client.watch(...)`` read into a queue by a thread.

    ``snapshot()`` reads up to SYNCED; ``next()`` the next event; ``expect()``
    the next events in order, failing on any other one in between (``skip``
    lets some kinds through, e.g. busy/idle of a shell drawing its prompt).
    """

    def __init__(self, client: Client, **filters: object) -> None:
        self._stream: WatchStream = client.watch(**filters)  # type: ignore[arg-type]
        self._events: queue.Queue[Event | WshRpcError | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self._events.put(event)
        except WshRpcError as err:
            self._events.put(err)
        self._events.put(None)

    def next(self, timeout: float = 15.0) -> Event:
        item = self._events.get(timeout=timeout)
        if isinstance(item, WshRpcError):
            raise item
        assert item is not None, "the stream ended"
        return item

    def snapshot(self, timeout: float = 15.0) -> list[Event]:
        out = []
        while (event := self.next(timeout)).event != hub_pb2.WATCH_EVENT_SYNCED:
            out.append(event)
        return out

    def until(
        self, predicate: Callable[[Event], bool], timeout: float = 15.0
    ) -> tuple[Event, list[Event]]:
        """The first event matching ``predicate``, and those before it."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if predicate(event):
                return event, seen
            seen.append(event)

    def expect(
        self, *wanted: tuple[int, str, str], skip: tuple[int, ...] = (), timeout: float = 15.0
    ) -> list[Event]:
        """The next events are ``wanted`` (event, server, session) in order."""
        got = []
        for kind, server, session in wanted:
            event = self.until(lambda e: e.event not in skip, timeout)[0]
            assert (event.event, event.server, event.session) == (kind, server, session), (
                f"expected {NAMES[kind]} {server}/{session}, got {describe(event)}"
            )
            got.append(event)
        return got

    def quiet(self, seconds: float, skip: tuple[int, ...] = ()) -> list[Event]:
        """Events within ``seconds`` that are not of a kind in ``skip``."""
        deadline = time.monotonic() + seconds
        out = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self._events.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(item, hub_pb2.WatchSessionsResponse) and item.event not in skip:
                out.append(item)
        return out

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
