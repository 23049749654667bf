"""Scale: cluster-wide calls on a hub as the number of backends grows.

For 1, 4 and 16 backends in turn (each layout started fresh and stopped
before the next, so the 2-core machine never runs more than one): a hub plus
N backend processes with 50 ``cat`` sessions each, created through the hub.
  ListSessions: the whole cluster (empty ``server``), N*50 sessions a call.
  RaceIdle first event: exactly one session in the cluster carries the tag
    raced over, on the last backend added, and it has been idle for far longer
    than the race's timeout_ms; timed from opening the stream to its first
    message (then the stream is cancelled). This is the cost of fanning the
    race out and getting an already-settled answer back through the hub.
Target: with 16 backends at most 3x the single-backend median, for both.
"""

from __future__ import annotations

import time

import _harness as h

from wsh.v1 import hub_pb2

SESSIONS_PER_BACKEND = 50
TAG = "raced"
RACE_TIMEOUT_MS = 50
TARGET_RATIO = 3.0


def measure(
    layout: int, sessions: int, calls: int, races: int, budget_s: float
) -> tuple[h.Stats, h.Stats]:
    """ListSessions and RaceIdle latencies on a fresh hub with ``layout`` backends."""
    with h.bench_run(f"scale{layout}") as (stack, scratch):
        backends = [h.start_server(stack, scratch, f"be{i}") for i in range(layout)]
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        h.add_backends(hub, backends)
        for backend in backends:
            for i in range(sessions):
                raced = backend is backends[-1] and i == 0
                hub.CreateSession(
                    hub_pb2.CreateSessionRequest(
                        server=backend.hostname,
                        name=f"cat{i}",
                        command="cat",
                        tags=[TAG] if raced else [],
                    ),
                    timeout=h.RPC_TIMEOUT,
                )
        expected = layout * sessions
        list_request = hub_pb2.ListSessionsRequest()
        # The hub learns about sessions from its links: wait until it lists them all.
        h.poll_until(
            lambda: (
                True
                if len(hub.ListSessions(list_request, timeout=h.RPC_TIMEOUT).sessions) == expected
                else None
            ),
            30.0,
            0.05,
            f"{expected} sessions listed",
        )
        # Well past the race's timeout_ms: the raced session is settled already.
        time.sleep(max(0.0, 3 * RACE_TIMEOUT_MS / 1000))

        listing = []
        for _ in h.bounded(calls, budget_s):
            start = h.now_ns()
            found = hub.ListSessions(list_request, timeout=h.RPC_TIMEOUT).sessions
            listing.append(h.now_ns() - start)
            if len(found) != expected:
                raise RuntimeError(f"listed {len(found)} sessions, expected {expected}")

        race_request = hub_pb2.RaceIdleRequest(
            tags=[TAG], timeout_ms=RACE_TIMEOUT_MS, max_wait_ms=10_000
        )
        first_events = []
        for _ in h.bounded(races, budget_s):
            start = h.now_ns()
            stream = hub.RaceIdle(race_request, timeout=h.RPC_TIMEOUT)
            try:
                idle = next(stream).idle
                first_events.append(h.now_ns() - start)
            finally:
                stream.cancel()
            if (idle.server, idle.session) != (backends[-1].hostname, "cat0"):
                raise RuntimeError(f"race answered {idle.server}/{idle.session}")
    return h.Stats.of(listing), h.Stats.of(first_events)


def main() -> None:
    args = h.parse_args(__doc__ or "")
    if args.quick:
        layouts, sessions, calls, races, budget_s = (1, 2), 5, 30, 20, 10.0
    else:
        layouts, sessions, calls, races, budget_s = (1, 4, 16), SESSIONS_PER_BACKEND, 300, 100, 60.0
    results = {}
    for layout in layouts:
        results[layout] = measure(layout, sessions, calls, races, budget_s)
        listing, race = results[layout]
        print(
            f"  {layout:2d} backends: ListSessions median {listing.median:.3g} ms "
            f"p99 {listing.p99:.3g} ms; RaceIdle first event median {race.median:.3g} ms "
            f"p99 {race.p99:.3g} ms"
        )

    one_list, one_race = results[layouts[0]]
    rows = []
    for layout in layouts[1:]:
        listing, race = results[layout]
        judged = TARGET_RATIO if layout == layouts[-1] else None
        n = f"{layout} backends"
        rows += [
            h.ratio_row(f"ListSessions median, {n}", listing.median, one_list.median, "ms", judged),
            h.ratio_row(f"ListSessions p99, {n}", listing.p99, one_list.p99, "ms", None),
            h.ratio_row(f"RaceIdle first median, {n}", race.median, one_race.median, "ms", judged),
            h.ratio_row(f"RaceIdle first p99, {n}", race.p99, one_race.p99, "ms", None),
        ]
    h.print_table(
        f"scale: hub with N backends x {sessions} cat sessions, against 1 backend "
        f"({one_list.n} ListSessions, {one_race.n} races per layout)",
        rows,
        "1 backend",
        "N backends",
    )


if __name__ == "__main__":
    main()
