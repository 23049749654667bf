"""Hop: the cost of reaching a backend's session through a hub.

A hub and one backend, each its own ``wsh server`` process. The same calls go
to the backend directly and to the hub with ``server=<backend>``, interleaved
call by call (the order rotating), from one client process:
  GetScreen on an idle bash session;
  SendInput of one byte to a session that reads and discards its input with
  the terminal's echo off, so the screen never changes;
  ListServers direct (the backend has no backends: a bare unary call) and
  GetServerInfo direct (it also reads the server's own /proc stats), for
  reference.
Target: through the hub at most 1.8x direct at the median.
"""

from __future__ import annotations

from collections.abc import Callable

import _harness as h

from wsh.v1 import hub_pb2

TARGET_RATIO = 1.8
SINK = "stty -echo; exec cat >/dev/null"


def main() -> None:
    args = h.parse_args(__doc__ or "")
    calls, budget_s = (200, 20.0) if args.quick else (2000, 150.0)
    with h.bench_run("hop") as (stack, scratch):
        backend = h.start_server(stack, scratch, "backend")
        hub_proc = h.start_server(stack, scratch, "hub")
        direct = h.connect(stack, backend.addr)
        hub = h.connect(stack, hub_proc.addr)
        h.add_backends(hub, [backend])
        h.create_shell(direct, "screen")
        direct.CreateSession(
            hub_pb2.CreateSessionRequest(name="sink", command=SINK), timeout=h.RPC_TIMEOUT
        )

        def via(stub: h.HubStub, server: str) -> dict[str, Callable[[], object]]:
            screen = hub_pb2.GetScreenRequest(server=server, name="screen")
            send = hub_pb2.SendInputRequest(server=server, name="sink", data=b"x")
            return {
                "GetScreen": lambda: stub.GetScreen(screen, timeout=h.RPC_TIMEOUT),
                "SendInput": lambda: stub.SendInput(send, timeout=h.RPC_TIMEOUT),
            }

        ops: dict[tuple[str, str], Callable[[], object]] = {}
        for path, stub, server in (("direct", direct, ""), ("hub", hub, backend.hostname)):
            for method, op in via(stub, server).items():
                ops[(method, path)] = op
        servers, info = hub_pb2.ListServersRequest(), hub_pb2.GetServerInfoRequest()
        ops[("ListServers", "direct")] = lambda: direct.ListServers(servers, timeout=h.RPC_TIMEOUT)
        ops[("GetServerInfo", "direct")] = lambda: direct.GetServerInfo(info, timeout=h.RPC_TIMEOUT)

        keys = list(ops)
        for key in keys:  # warm up both channels and the hub's link
            for _ in range(20):
                ops[key]()
        samples: dict[tuple[str, str], list[int]] = {key: [] for key in keys}
        for run in h.bounded(calls, budget_s):
            shift = run % len(keys)
            for key in keys[shift:] + keys[:shift]:
                start = h.now_ns()
                ops[key]()
                samples[key].append(h.now_ns() - start)

    stats = {key: h.Stats.of(s) for key, s in samples.items()}
    rows = []
    for method in ("GetScreen", "SendInput"):
        hub_s, direct_s = stats[(method, "hub")], stats[(method, "direct")]
        rows += [
            h.ratio_row(f"{method} median", hub_s.median, direct_s.median, "ms", TARGET_RATIO),
            h.ratio_row(f"{method} p99", hub_s.p99, direct_s.p99, "ms", None),
        ]
    bare = stats[("ListServers", "direct")]
    h.print_table(f"hop: hub -> backend vs direct, {bare.n} calls each", rows, "direct", "via hub")
    for method in ("ListServers", "GetServerInfo"):
        ref = stats[(method, "direct")]
        print(f"{method} direct (reference): median {ref.median:.3g} ms, p99 {ref.p99:.3g} ms")


if __name__ == "__main__":
    main()
