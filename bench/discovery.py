"""Discovery: from a DNS change to a HEALTHY backend on the hub.

A real DNS server (Debian's dnsmasq, on 127.0.0.1 and a free port) answers
for ``backends.wsh.test`` from a hosts file; a hub resolves it
(``[[discovery]]``, interval I, grace 0). Each round adds a backend's
address (127.0.0.3, a running ``wsh server``) to the file and signals
dnsmasq to re-read it, then polls ListServers every 10 ms until the backend
is HEALTHY; then takes the address out again and waits until the hub has
dropped it. The time is from the signal to HEALTHY.
Target: at most I + 1 s in every round.
"""

from __future__ import annotations

import time
from pathlib import Path

import _harness as h

from tests.dnsmasq import Dnsmasq, available
from tests.procs import ServerProc, free_port
from wsh.v1 import hub_pb2

NAME = "backends.wsh.test"
ADDRESS = "127.0.0.3"
INTERVAL_S = 2


def healthy(hub: h.HubStub, hostname: str) -> bool | None:
    """True once HEALTHY, False while listed otherwise, None while not listed."""
    for server in hub.ListServers(hub_pb2.ListServersRequest(), timeout=h.RPC_TIMEOUT).servers:
        if server.hostname == hostname:
            return server.health == hub_pb2.SERVER_HEALTH_HEALTHY
    return None


def main() -> None:
    args = h.parse_args(__doc__ or "")
    rounds = 3 if args.quick else 15
    if not available():
        raise SystemExit("dnsmasq is not installed (scripts/setup installs dnsmasq-base)")
    samples: list[int] = []
    with h.bench_run("discovery") as (stack, scratch):
        port = free_port(ADDRESS)
        backend = ServerProc(
            "found", listen=f"{ADDRESS}:{port}", log_path=scratch / "found.log"
        ).start()
        stack.callback(h.stop_server, backend)
        dns = Dnsmasq(scratch, []).start()
        stack.callback(dns.stop)
        config = Path(scratch / "hub.toml")
        config.write_text(
            f'[[discovery]]\nname = "{NAME}"\nport = {port}\nnameserver = "{dns.nameserver}"\n'
            f"interval = {INTERVAL_S}\ngrace = 0\n"
        )
        hub_proc = ServerProc("hub", "--config", str(config), log_path=scratch / "hub.log").start()
        stack.callback(h.stop_server, hub_proc)
        hub = h.connect(stack, hub_proc.addr)
        for _ in range(rounds):
            dns.set_hosts([f"{ADDRESS} {NAME}"])
            start = h.now_ns()
            h.poll_until(
                lambda: True if healthy(hub, "found") else None, INTERVAL_S + 30, 0.01, "HEALTHY"
            )
            samples.append(h.now_ns() - start)
            dns.set_hosts([])
            h.poll_until(
                lambda: True if healthy(hub, "found") is None else None,
                INTERVAL_S + 30,
                0.05,
                "the backend dropped",
            )
            # Start the next round at a different point of the hub's interval.
            time.sleep(0.37)

    stats = h.Stats.of(samples)
    limit_ms = (INTERVAL_S + 1) * 1000
    rows = [
        h.limit_row("DNS change -> HEALTHY, median", stats.median, "ms", None),
        h.limit_row("DNS change -> HEALTHY, max", stats.max, "ms", limit_ms),
    ]
    h.print_table(f"discovery: interval {INTERVAL_S} s, {stats.n} rounds", rows)


if __name__ == "__main__":
    main()
