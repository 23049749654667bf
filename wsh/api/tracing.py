"""OpenTelemetry traces of one server (opt-in: ``--tracing``).

A span per RPC served, continuing the caller's W3C ``traceparent`` (and
carrying its ``baggage``), and a client span per call a hub forwards to a
backend, whose ``traceparent`` and ``baggage`` the backend continues in
turn. Spans are exported as the standard ``OTEL_*`` variables say:
``OTEL_TRACES_EXPORTER`` (``otlp``, the default, ``console`` or ``none``),
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc``,
the default, or ``http/protobuf``), ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and the rest the SDK
reads; propagation follows ``OTEL_PROPAGATORS`` (W3C trace context and
baggage by default).

The spans are made here with the OpenTelemetry API, not with
``opentelemetry-instrumentation-grpc``'s grpc.aio interceptors: with those,
a GetScreen through a hub to its backend cost 1.23 ms more than without
tracing (+42%) with every call traced, and 0.92 ms (+31%) with 10% of the
traces sampled; with these, 0.86 ms (+32%) and 0.57 ms (+22%)
(bench/observability.py, two runs on the same loaded 2-core machine,
bench/RESULTS.md). Their per-call machinery (interceptors on the channel, a
proxy around every servicer context) is paid by the calls not sampled too.
The Link stream (hours long) and health
checks get no span. With tracing off none of this is imported, and a hub
passes the trace headers it received on to the backend unchanged
(``remote.passed_on``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from wsh.api.metrics import call_code, split_method
from wsh.api.status import Ctx, Handler, Interceptor, WrappingInterceptor, rewrap
from wsh.errors import Kind, WshError

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")
# Long-lived streams whose one span would last as long as the process.
UNTRACED = ("/wsh.v1.BackendService/Link", "/grpc.health.v1.Health/")
# What the propagators read of a call's metadata.
TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
HUB_SERVICE = "wsh.v1.HubService"


def _exporter() -> SpanExporter | None:
    """The exporter ``OTEL_TRACES_EXPORTER`` names (None: spans are not sent)."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name not in EXPORTERS:
        raise WshError(
            Kind.INVALID_ARGUMENT,
            "TRACING_INVALID",
            f"OTEL_TRACES_EXPORTER={name[:64]!r} is not one of {', '.join(EXPORTERS)}.",
        )
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        return HttpSpanExporter()
    raise WshError(
        Kind.INVALID_ARGUMENT,
        "TRACING_INVALID",
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol[:64]!r} is not grpc or http/protobuf.",
    )


def _failed(span: trace.Span, code: str) -> None:
    """Mark ``span`` with the call's status code name unless it is OK."""
    if code != "OK" and span.is_recording():
        span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[code].value[0])
        span.set_status(Status(StatusCode.ERROR, code))


def _client_code(exc: BaseException) -> str:
    """The status code a forwarded call that raised ``exc`` ended with."""
    if isinstance(exc, WshError):
        return exc.kind.value
    code = getattr(exc, "code", None)  # RemoteStatus: the backend's, passed on
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "UNKNOWN"


class Tracing:
    """The tracer provider of one server, its server interceptor and its
    client spans."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("wsh")

    @classmethod
    def from_env(cls, hostname: str) -> Tracing:
        """A provider configured by the ``OTEL_*`` variables; ``service.name``
        is ``wsh`` and ``host.name`` the server's hostname unless they say
        otherwise."""
        resource = Resource.create({"service.name": "wsh", "host.name": hostname})
        provider = TracerProvider(resource=resource)
        exporter = _exporter()
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def server_interceptor(self) -> Interceptor:
        return _TracingInterceptor(self.tracer)

    @contextlib.contextmanager
    def client_span(self, method: str) -> Iterator[tuple[tuple[str, str], ...]]:
        """A client span for a call of HubService ``method`` to a backend;
        gives the headers that carry it and the current baggage."""
        with self.tracer.start_as_current_span(
            f"/{HUB_SERVICE}/{method}",
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": HUB_SERVICE, "rpc.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            try:
                yield tuple(carrier.items())
            except BaseException as exc:
                _failed(span, _client_code(exc))
                raise

    def close(self) -> None:
        """Send the spans still buffered (blocks: run it off the event loop)."""
        self.provider.shutdown()


class _TracingInterceptor(WrappingInterceptor):
    """A SERVER span around every call but the Link and health checks."""

    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self._tracer = tracer

    def covers(self, method: str) -> bool:
        return not method.startswith(UNTRACED)

    def wrap(self, path: str, handler: Handler) -> Handler:
        tracer = self._tracer
        service, method = split_method(path)
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

        @contextlib.contextmanager
        def span(context: Ctx) -> Iterator[None]:
            carrier = {
                key: value
                for key, value in context.invocation_metadata() or ()
                if key in TRACE_HEADERS
            }
            # The caller's context, baggage included, is the call's: the
            # span's parent, and what a forwarded call carries on.
            token = otel_context.attach(propagate.extract(carrier)) if carrier else None
            try:
                with tracer.start_as_current_span(
                    path,
                    kind=SpanKind.SERVER,
                    attributes=attributes,
                    record_exception=False,
                    set_status_on_exception=False,
                ) as current:
                    try:
                        yield
                    except BaseException as exc:
                        _failed(current, call_code(exc, context))
                        raise
            finally:
                if token is not None:
                    otel_context.detach(token)

        def unary_out(inner: Any) -> Any:
            async def call(request: Any, context: Ctx) -> Any:
                with span(context):
                    return await inner(request, context)

            return call

        def stream_out(inner: Any) -> Any:
            async def call(request: Any, context: Ctx) -> AsyncIterator[Any]:
                with span(context):
                    async for item in inner(request, context):
                        yield item

            return call

        return rewrap(handler, unary_out, stream_out)


class TraceIds(logging.Filter):
    """Gives every log record the ids of the span it was logged in:
    ``trace_id`` and ``span_id`` (empty outside a span) and ``trace`` (`` trace_id=…
    span_id=…`` for text logs, empty outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        trace_id = span_id = text = ""
        if context.is_valid:
            trace_id = trace.format_trace_id(context.trace_id)
            span_id = trace.format_span_id(context.span_id)
            text = f" trace_id={trace_id} span_id={span_id}"
        record.__dict__.update(trace_id=trace_id, span_id=span_id, trace=text)
        return True
