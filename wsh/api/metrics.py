"""Prometheus metrics of one server (opt-in: ``--metrics-listen``).

Two kinds, both in the server's own registry (several servers may share a
process, in tests):

- counted as things happen: RPCs started and handled (by service, method
  and status code) and their handling time, by the ``MetricsInterceptor``
  in front of every call; calls forwarded to a backend (by backend and
  status code); bytes read from PTYs (counted by the sessions, always);
- read at scrape time, on the event loop: sessions by state, races open,
  backends by health and draining, each backend's Link heartbeat round trip.

Waits, attachers and watchers are RPCs in flight:
``wsh_grpc_server_in_flight{grpc_method="AwaitIdle"}`` (and ``RaceIdle``, and
whatever streams are added later) count them without code of their own.

Label values are bounded: method names come from the registered services
(an unknown method never reaches an interceptor's wrapper), backend labels
are hostnames of registered backends (at most ``max_backends``), status codes
are gRPC's 17. No session name is ever a label.

Nothing here runs when metrics are off: the server then installs no
interceptor and starts no HTTP server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wsh.api.status import Ctx, Handler, WrappingInterceptor, rewrap
from wsh.errors import Kind, WshError, shorten
from wsh.federation.registry import Health, Registry
from wsh.sessions.info import SessionState
from wsh.sessions.manager import SessionManager

log = logging.getLogger(__name__)

# Handling time of unary calls (ms to s) and of waits and streams (up to the
# 300 s wait cap, and Links that last hours).
BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)  # fmt: skip
# How long a scrape waits for the event loop to read the server's state.
SNAPSHOT_TIMEOUT_S = 5.0
T = TypeVar("T")


def split_method(path: str) -> tuple[str, str]:
    """``/wsh.v1.HubService/GetScreen`` as (``wsh.v1.HubService``, ``GetScreen``)."""
    service, _, method = path.rpartition("/")
    return service.lstrip("/") or "unknown", method or "unknown"


@dataclass(frozen=True, slots=True)
class ServerState:
    """What a scrape reads of the running server (on its event loop)."""

    sessions: SessionManager
    registry: Registry
    races_open: Callable[[], int]


class Metrics:
    """The metrics of one server and the HTTP endpoint that serves them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # No grpc_type: a call refused before its handler (no token) is
        # answered by a stream handler whatever its method's real shape.
        labels = ("grpc_service", "grpc_method")
        self.started = Counter(
            "wsh_grpc_server_started",
            "RPCs started on this server.",
            labels,
            registry=self.registry,
        )
        self.handled = Counter(
            "wsh_grpc_server_handled",
            "RPCs completed on this server, by status code.",
            (*labels, "grpc_code"),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "wsh_grpc_server_in_flight",
            "RPCs in progress: AwaitIdle counts waits open, RaceIdle races, Link the hubs "
            "linked to this server.",
            labels,
            registry=self.registry,
        )
        self.handling = Histogram(
            "wsh_grpc_server_handling_seconds",
            "Time from an RPC's start to its status.",
            labels,
            buckets=BUCKETS_S,
            registry=self.registry,
        )
        self.forwarded = Counter(
            "wsh_forwarded_calls",
            "Calls this hub forwarded to a backend, by the backend's hostname and the outcome "
            "(a gRPC status code name).",
            ("backend", "grpc_method", "outcome"),
            registry=self.registry,
        )
        self._http: tuple[WSGIServer, threading.Thread] | None = None

    def watch(self, state: ServerState) -> None:
        """Report ``state`` at every scrape (read on the calling event loop)."""
        self.registry.register(_StateCollector(state, asyncio.get_running_loop()))

    async def forward(self, backend: str, method: str, call: Awaitable[T]) -> T:
        """Await the forwarded ``call`` and count its outcome."""
        outcome = "OK"
        try:
            return await call
        except WshError as err:
            outcome = err.kind.value
            raise
        except asyncio.CancelledError:
            outcome = grpc.StatusCode.CANCELLED.name
            raise
        except Exception as err:
            code = getattr(err, "code", None)
            outcome = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
            raise
        finally:
            self.forwarded.labels(backend, method, outcome).inc()

    def start_http(self, listen: str) -> int:
        """Serve ``/metrics`` on ``listen`` (HOST:PORT, port 0 picks one) from
        prometheus-client's thread; returns the port."""
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise WshError(
                Kind.INVALID_ARGUMENT,
                "METRICS_LISTEN_INVALID",
                f"--metrics-listen {shorten(listen)!r} is not HOST:PORT.",
            )
        try:
            server, thread = start_http_server(int(port), host.strip("[]"), registry=self.registry)
        except OSError as exc:
            raise WshError(
                Kind.UNAVAILABLE,
                "ADDRESS_IN_USE" if exc.errno == errno.EADDRINUSE else "LISTEN_FAILED",
                f"Cannot serve metrics on {shorten(listen)}: {exc.strerror or exc}.",
            ) from None
        self._http = (server, thread)
        return int(server.server_port)

    async def close(self) -> None:
        if self._http is not None:
            server, thread = self._http
            self._http = None
            await asyncio.to_thread(_stop_http, server, thread)


def _stop_http(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class _StateCollector(Collector):
    """The server's state, read on its event loop when Prometheus scrapes.

    prometheus-client serves scrapes from its own thread, while the state is
    the event loop's (dicts it changes as it runs): the thread asks the loop
    for a snapshot and waits for it.
    """

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self._state = state
        self._loop = loop

    def describe(self) -> list[Metric]:
        return []  # never collected at registration (that runs on the loop)

    def collect(self) -> Iterable[Metric]:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            return self._snapshot()
        if self._loop.is_closed():
            return []

        async def snapshot() -> list[Metric]:
            return self._snapshot()

        try:
            future = asyncio.run_coroutine_threadsafe(snapshot(), self._loop)
            return future.result(timeout=SNAPSHOT_TIMEOUT_S)
        except Exception as exc:  # a busy or stopping loop: the counters still go out
            log.warning("metrics: no snapshot of the server's state: %r", exc)
            return []

    def _snapshot(self) -> list[Metric]:
        state = self._state
        sessions = GaugeMetricFamily(
            "wsh_sessions", "Sessions on this server, by state.", labels=["state"]
        )
        counts = dict.fromkeys((s.value for s in SessionState), 0)
        for session in state.sessions.matching():
            counts[session.state.value] += 1
        for key, count in counts.items():
            sessions.add_metric([key], count)
        output = CounterMetricFamily(
            "wsh_pty_output_bytes",
            "Bytes read from the PTYs of this server's sessions.",
            value=state.sessions.output_bytes,
        )
        races = GaugeMetricFamily(
            "wsh_races_open", "RaceIdle streams open on this server.", value=state.races_open()
        )
        backends = GaugeMetricFamily(
            "wsh_backends", "Backends registered with this hub, by health.", labels=["health"]
        )
        by_health = dict.fromkeys((h.value for h in Health), 0)
        rtt = GaugeMetricFamily(
            "wsh_backend_link_rtt_seconds",
            "Round trip of the last Link heartbeat answered, per healthy backend.",
            labels=["backend"],
        )
        draining = 0
        for backend in state.registry:
            by_health[backend.health.value] += 1
            if backend.healthy:
                rtt.add_metric([backend.hostname], backend.latency_ms / 1000)
                draining += backend.draining
        for health, count in by_health.items():
            backends.add_metric([health], count)
        drains = GaugeMetricFamily(
            "wsh_backends_draining",
            "Healthy backends that said they are shutting down: no new sessions go there.",
            value=draining,
        )
        return [sessions, output, races, backends, rtt, drains]


class MetricsInterceptor(WrappingInterceptor):
    """Counts and times every call that reaches a registered method."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def wrap(self, path: str, handler: Handler) -> Handler:
        metrics = self._metrics
        labels = split_method(path)
        started = metrics.started.labels(*labels)
        in_flight = metrics.in_flight.labels(*labels)
        handling = metrics.handling.labels(*labels)

        def finish(t0: float, code: str) -> None:
            # Counted before it leaves in_flight: a scrape that sees the call
            # ended sees its status too.
            handling.observe(time.perf_counter() - t0)
            metrics.handled.labels(*labels, code).inc()
            in_flight.dec()

        def begin() -> float:
            started.inc()
            in_flight.inc()
            return time.perf_counter()

        def unary_out(inner: Any) -> Any:
            async def call(request: Any, context: Ctx) -> Any:
                t0, code = begin(), "OK"
                try:
                    return await inner(request, context)
                except BaseException as exc:
                    code = call_code(exc, context)
                    raise
                finally:
                    finish(t0, code)

            return call

        def stream_out(inner: Any) -> Any:
            async def call(request: Any, context: Ctx) -> AsyncIterator[Any]:
                t0, code = begin(), "OK"
                try:
                    async for item in inner(request, context):
                        yield item
                except BaseException as exc:
                    code = call_code(exc, context)
                    raise
                finally:
                    finish(t0, code)

            return call

        return rewrap(handler, unary_out, stream_out)


def call_code(exc: BaseException, context: Ctx) -> str:
    """The status a call that raised ``exc`` ends with."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return grpc.StatusCode.UNKNOWN.name
