"""Many registered backends: what an idle hub costs with unreachable ones, and
how long AddServer (with its config write-back) takes as the list grows.

Registers ``--count`` backends that nobody listens on (closed loopback ports:
connection refused at once) with ``AddServer(wait=false)``, timing each call,
then reads the hub's CPU time from ``/proc/PID/stat`` over ``--idle-s``
seconds with ``--idle-at`` of them registered (and again with all of them),
``--settle-s`` seconds after the last one was added.

    python bench/registrations.py                           # this tree
    python bench/registrations.py --server-cwd ../old       # other code, same bench
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _hostile as hx
import grpc

from tests.procs import closed_ports
from wsh.v1 import hub_pb2, hub_pb2_grpc

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15; fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def idle_cpu(pid: int, seconds: float) -> float:
    """The hub's CPU use over ``seconds``, in percent of one core."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=250)
    parser.add_argument("--idle-at", type=int, default=60)
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument(
        "--settle-s",
        type=float,
        default=15.0,
        help="wait before measuring, past the first retries of the new backends",
    )
    parser.add_argument("--server-python", default=sys.executable)
    parser.add_argument("--server-cwd", type=Path, default=hx.REPO)
    args = parser.parse_args()
    code = hx.ServerCode(args.server_python, args.server_cwd.resolve())
    with tempfile.TemporaryDirectory(prefix="wsh-registrations-") as tmp:
        workdir = Path(tmp)
        config = workdir / "hub.toml"
        config.write_text("# hub config: this comment must survive write-back\n")
        hub = hx.start_server(code, workdir, "hub")
        try:
            channel = grpc.insecure_channel(hub.address)
            stub = hub_pb2_grpc.HubServiceStub(channel)
            times_ms: list[float] = []
            cpu_at_idle = None
            for index, port in enumerate(closed_ports(args.count), start=1):
                started = time.perf_counter()
                stub.AddServer(
                    hub_pb2.AddServerRequest(address=f"http://127.0.0.1:{port}"), timeout=60
                )
                times_ms.append((time.perf_counter() - started) * 1000)
                if index == args.idle_at:
                    time.sleep(args.settle_s)
                    cpu_at_idle = idle_cpu(hub.pid, args.idle_s)
            time.sleep(args.settle_s)
            cpu_all = idle_cpu(hub.pid, args.idle_s)
            channel.close()
            comment_kept = "this comment must survive" in config.read_text()
        finally:
            hub.stop()
    print(f"code: {code.cwd}")
    for at in (1, 50, 100, 200, args.count):
        if at <= len(times_ms):
            print(f"AddServer #{at}: {times_ms[at - 1]:.1f} ms")
    last = times_ms[-10:]
    print(f"AddServer, last 10: median {statistics.median(last):.1f} ms, max {max(last):.1f} ms")
    if cpu_at_idle is not None:
        print(
            f"idle hub CPU with {args.idle_at} unreachable backends: {cpu_at_idle:.1f}% of a core"
        )
    print(f"idle hub CPU with {len(times_ms)} unreachable backends: {cpu_all:.1f}% of a core")
    print(f"config comment kept: {comment_kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
