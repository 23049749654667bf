"""Watch: how soon an event on a backend reaches a WatchSessions watcher on the hub.

A hub plus 16 backend processes with 50 ``cat`` sessions each, created
through the hub; one watcher on the hub (no filter) reads its stream on a
thread and stamps each event as it arrives. Then, round robin over the
backends, calls made directly on a backend (not through the hub, so the
event can only come by the backend's Link):
  created: CreateSession on the backend, to the watcher's SESSION_CREATED,
    timed from the backend's answer (the session exists by then; the event
    may even come first, counted as 0), and from the call's start for
    reference (which includes the backend's fork and exec of ``cat``: tens
    of milliseconds on a loaded machine);
  killed: KillSession on the backend, to SESSION_KILLED;
  busy / idle: SendInput of one line to a settled ``cat`` on the backend, to
    SESSION_BUSY, and to SESSION_IDLE (which includes the backend's settle
    time, about 50 ms of quiet: reported, not judged).
Target: created (from the answer), killed and busy p99 within 50 ms.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import _harness as h

from wsh.v1 import hub_pb2

BACKENDS = 16
SESSIONS_PER_BACKEND = 50
TARGET_P99_MS = 50.0

Key = tuple[int, str, str]


class Watcher:
    """One WatchSessions stream on the hub, read on a thread; each event is
    stamped with the benchmark clock as it arrives."""

    def __init__(self, hub: h.HubStub) -> None:
        self._stream = hub.WatchSessions(hub_pb2.WatchSessionsRequest())
        self._arrived: queue.Queue[tuple[int, hub_pb2.WatchSessionsResponse]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.resyncs = 0

    def _read(self) -> None:
        try:
            for event in self._stream:
                self._arrived.put((h.now_ns(), event))
        except Exception:  # the stream is cancelled at the end
            return

    def events(self, timeout: float) -> Iterator[tuple[int, hub_pb2.WatchSessionsResponse]]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such event")
            at, event = self._arrived.get(timeout=left)
            self.resyncs = max(self.resyncs, event.resyncs)
            yield at, event

    def wait_for(self, key: Key, timeout: float = 10.0) -> int:
        """When the event ``key`` (event, server, session) arrived."""
        for at, event in self.events(timeout):
            if (event.event, event.server, event.session) == key:
                return at
        raise AssertionError("unreachable")

    def drain(self) -> None:
        while True:
            try:
                self._arrived.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(5)


def main() -> None:
    args = h.parse_args(__doc__ or "")
    backends_n, sessions, runs = (2, 5, 20) if args.quick else (BACKENDS, SESSIONS_PER_BACKEND, 300)
    with h.bench_run("watch") as (stack, scratch):
        backends = [h.start_server(stack, scratch, f"be{i}") for i in range(backends_n)]
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        h.add_backends(hub, backends)
        direct = [h.connect(stack, b.addr) for b in backends]
        for backend in backends:
            for i in range(sessions):
                hub.CreateSession(
                    hub_pb2.CreateSessionRequest(
                        server=backend.hostname, name=f"cat{i}", command="cat"
                    ),
                    timeout=h.RPC_TIMEOUT,
                )
        expected = backends_n * sessions
        watcher = Watcher(hub)
        stack.callback(watcher.close)
        snapshot = 0
        for _, event in watcher.events(30):
            if event.event == hub_pb2.WATCH_EVENT_SYNCED:
                break
            snapshot += event.event == hub_pb2.WATCH_EVENT_SESSION
        if snapshot != expected:
            raise RuntimeError(f"snapshot held {snapshot} sessions, expected {expected}")
        # Let the sessions' own start-up settle before anything is timed.
        time.sleep(1.0)
        watcher.drain()

        created, spawned, killed, busy, idle = [], [], [], [], []
        for run in range(runs):
            i = run % backends_n
            server, stub = backends[i].hostname, direct[i]
            name = f"probe{run}"
            start = h.now_ns()
            stub.CreateSession(
                hub_pb2.CreateSessionRequest(name=name, command="cat"), timeout=h.RPC_TIMEOUT
            )
            answered = h.now_ns()
            at = watcher.wait_for((hub_pb2.WATCH_EVENT_SESSION_CREATED, server, name))
            created.append(max(0, at - answered))
            spawned.append(at - start)
            start = h.now_ns()
            stub.KillSession(hub_pb2.KillSessionRequest(name=name), timeout=h.RPC_TIMEOUT)
            killed.append(
                watcher.wait_for((hub_pb2.WATCH_EVENT_SESSION_KILLED, server, name)) - start
            )
            target = f"cat{run % sessions}"
            start = h.now_ns()
            stub.SendInput(
                hub_pb2.SendInputRequest(name=target, data=b"x\n"), timeout=h.RPC_TIMEOUT
            )
            busy.append(
                watcher.wait_for((hub_pb2.WATCH_EVENT_SESSION_BUSY, server, target)) - start
            )
            idle.append(
                watcher.wait_for((hub_pb2.WATCH_EVENT_SESSION_IDLE, server, target)) - start
            )
        stats = {
            "created": h.Stats.of(created),
            "created, spawn included": h.Stats.of(spawned),
            "killed": h.Stats.of(killed),
            "busy": h.Stats.of(busy),
            "idle (settle time included)": h.Stats.of(idle),
        }
    rows = []
    for what, s in stats.items():
        judged = not what.startswith("idle") and "spawn" not in what
        rows += [
            h.limit_row(f"{what} median", s.median, "ms", None),
            h.limit_row(f"{what} p99", s.p99, "ms", TARGET_P99_MS if judged else None),
        ]
    h.print_table(
        f"watch: event on one of {backends_n} backends x {sessions} cat sessions to a "
        f"watcher on the hub ({runs} runs of each; watcher resyncs: {watcher.resyncs})",
        rows,
    )


if __name__ == "__main__":
    main()
