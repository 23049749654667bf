"""Observability: what metrics and tracing switched on cost, on the hop and
round-trip benchmarks' calls.

Four identical clusters (a hub and one backend, each its own ``wsh server``):
  off: plain;
  metrics: ``--metrics-listen`` on both, scraped every second (Prometheus
  scrapes every 15 s by default);
  all: metrics and ``--tracing``, every call traced, spans exported over
  OTLP/HTTP to a collector in this process that takes and discards them (so
  the export is paid, as in production);
  all, 10%: the same with OTEL_TRACES_SAMPLER=parentbased_traceidratio and
  OTEL_TRACES_SAMPLER_ARG=0.1 (a trace the caller sampled is always kept).
The same calls go to all four, interleaved call by call, the order rotating:
  hop: GetScreen and SendInput through the hub to the backend (bench/hop.py);
  roundtrip: on a session of the hub, ``echo <token>`` then AwaitIdle
  (timeout_ms=20) until the token shows, and SendInput then GetScreen until
  it shows (bench/roundtrip.py's "await" and "visible").
Target: with metrics and tracing on, every median at most 1.10x off's.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import _harness as h
from roundtrip import AwaitProbe, visible_probe

from tests.procs import ServerProc, free_port
from wsh.v1 import hub_pb2

TARGET_RATIO = 1.10
SINK = "stty -echo; exec cat >/dev/null"


class _Discard(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that takes every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_variant(
    stack: contextlib.ExitStack,
    scratch: Path,
    hostname: str,
    metrics: int,
    env: dict[str, str] | None,
) -> ServerProc:
    """A server with metrics on ``metrics`` and, with ``env``, tracing."""
    args = ["--metrics-listen", f"127.0.0.1:{metrics}"]
    if env is not None:
        args.append("--tracing")
    proc = ServerProc(
        hostname,
        "--config",
        str(scratch / f"{hostname}.toml"),
        *args,
        env=env,
        log_path=scratch / f"{hostname}.log",
    )
    stack.callback(h.stop_server, proc)
    return proc.start()


def scraper(ports: list[int], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                r.read()


def main() -> None:
    args = h.parse_args(__doc__ or "")
    calls, budget_s = (100, 30.0) if args.quick else (1500, 240.0)
    with h.bench_run("observability") as (stack, scratch):
        collector = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
        threading.Thread(target=collector.serve_forever, daemon=True).start()
        stack.callback(collector.shutdown)
        port = collector.server_address[1]

        otlp = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        }
        sampled = {
            **otlp,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        clusters: dict[str, tuple[ServerProc, ServerProc]] = {
            "off": (
                h.start_server(stack, scratch, "off-backend"),
                h.start_server(stack, scratch, "off-hub"),
            )
        }
        scraped: list[int] = []
        for label, env in (("metrics", None), ("all", otlp), ("all, 10%", sampled)):
            name = label.replace(", ", "-").replace("%", "")
            pair = []
            for role in ("backend", "hub"):
                scraped.append(free_port())
                pair.append(start_variant(stack, scratch, f"{name}-{role}", scraped[-1], env))
            clusters[label] = (pair[0], pair[1])
        stop = threading.Event()
        thread = threading.Thread(target=scraper, args=(scraped, stop), daemon=True)
        thread.start()
        stack.callback(stop.set)

        ops: dict[tuple[str, str], Callable[[str], object]] = {}
        for label, (backend, hub_proc) in clusters.items():
            hub = h.connect(stack, hub_proc.addr)
            h.add_backends(hub, [backend])
            server = backend.hostname
            h.create_shell(hub, "screen", server=server)
            hub.CreateSession(
                hub_pb2.CreateSessionRequest(name="sink", server=server, command=SINK),
                timeout=h.RPC_TIMEOUT,
            )
            h.create_shell(hub, "await")
            h.create_shell(hub, "visible")
            screen = hub_pb2.GetScreenRequest(server=server, name="screen")
            send = hub_pb2.SendInputRequest(server=server, name="sink", data=b"x")
            ops[("hop GetScreen", label)] = lambda _t, hub=hub, screen=screen: hub.GetScreen(
                screen, timeout=h.RPC_TIMEOUT
            )
            ops[("hop SendInput", label)] = lambda _t, hub=hub, send=send: hub.SendInput(
                send, timeout=h.RPC_TIMEOUT
            )
            ops[("roundtrip await 20 ms", label)] = AwaitProbe(hub, "await", 20)
            ops[("roundtrip visible", label)] = visible_probe(hub, "visible")

        keys = list(ops)
        for key in keys:
            for _ in range(10):
                ops[key](uuid.uuid4().hex[:12])
        samples: dict[tuple[str, str], list[int]] = {key: [] for key in keys}
        for run in h.bounded(calls, budget_s):
            shift = run % len(keys)
            for key in keys[shift:] + keys[:shift]:
                token = uuid.uuid4().hex[:12]
                start = h.now_ns()
                ops[key](token)
                samples[key].append(h.now_ns() - start)
        stop.set()
        thread.join(5)

    stats = {key: h.Stats.of(s) for key, s in samples.items()}
    n = stats[keys[0]].n
    for label in ("metrics", "all", "all, 10%"):
        rows = []
        for metric in dict.fromkeys(k[0] for k in keys):
            on, off = stats[(metric, label)], stats[(metric, "off")]
            rows += [
                h.ratio_row(f"{metric} median", on.median, off.median, "ms", TARGET_RATIO),
                h.ratio_row(f"{metric} p99", on.p99, off.p99, "ms", None),
            ]
        h.print_table(f"observability: {label} vs off, {n} calls each", rows, "off", label)


if __name__ == "__main__":
    main()
