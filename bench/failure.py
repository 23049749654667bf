"""Failure: how fast a hub notices a backend die and come back.

A hub and one backend. Each round: ``kill -9`` the backend, then ListServers
on the hub every 10 ms until the backend shows UNAVAILABLE (timed from the
kill); then start the backend again on the same port and poll the same way
until it shows HEALTHY, timed from the restart (spawning the process, which
includes Python's start-up) and, separately, from the moment the new process
printed that it is listening (the hub's own share: reconnect backoff, link
handshake). Five rounds. Targets: UNAVAILABLE under 1 s, HEALTHY under 2 s
(from the restart), both at the worst round.
"""

from __future__ import annotations

import os
import signal

import _harness as h

from wsh.v1 import hub_pb2

POLL_S = 0.010
UNAVAILABLE_TARGET_S = 1.0
HEALTHY_TARGET_S = 2.0
WAIT_S = 30.0


def wait_health(hub: h.HubStub, hostname: str, health: int) -> None:
    """Poll ListServers every ``POLL_S`` until ``hostname`` shows ``health``."""
    request = hub_pb2.ListServersRequest()

    def reached() -> bool | None:
        servers = hub.ListServers(request, timeout=h.RPC_TIMEOUT).servers
        return True if any(s.hostname == hostname and s.health == health for s in servers) else None

    h.poll_until(
        reached, WAIT_S, POLL_S, f"{hostname} to reach {hub_pb2.ServerHealth.Name(health)}"
    )


def main() -> None:
    args = h.parse_args(__doc__ or "")
    rounds = 2 if args.quick else 5
    down, up, up_listening = [], [], []
    with h.bench_run("failure") as (stack, scratch):
        backend = h.start_server(stack, scratch, "victim")
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        h.add_backends(hub, [backend])
        for _ in range(rounds):
            start = h.now_ns()
            os.kill(backend.pid, signal.SIGKILL)
            wait_health(hub, backend.hostname, hub_pb2.SERVER_HEALTH_UNAVAILABLE)
            down.append(h.now_ns() - start)
            assert backend.proc is not None
            backend.proc.wait(WAIT_S)

            start = h.now_ns()
            backend = h.start_server(stack, scratch, "victim", listen=backend.addr)
            listening = h.now_ns()
            wait_health(hub, backend.hostname, hub_pb2.SERVER_HEALTH_HEALTHY)
            up.append(h.now_ns() - start)
            up_listening.append(h.now_ns() - listening)

    down_s, up_s, listen_s = h.Stats.of(down), h.Stats.of(up), h.Stats.of(up_listening)
    rows = [
        h.limit_row("kill -9 -> UNAVAILABLE, median", down_s.median, "ms", None),
        h.limit_row("kill -9 -> UNAVAILABLE, max", down_s.max, "ms", UNAVAILABLE_TARGET_S * 1000),
        h.limit_row("restart -> HEALTHY, median", up_s.median, "ms", None),
        h.limit_row("restart -> HEALTHY, max", up_s.max, "ms", HEALTHY_TARGET_S * 1000),
        h.limit_row("listening -> HEALTHY, median", listen_s.median, "ms", None),
        h.limit_row("listening -> HEALTHY, max", listen_s.max, "ms", None),
    ]
    h.print_table(f"failure: hub's view of a backend killed and restarted, {down_s.n} rounds", rows)


if __name__ == "__main__":
    main()
