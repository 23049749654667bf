"""OpenTelemetry traces of one server (opt-in: ``--tracing``).

A span per RPC served (``opentelemetry-instrumentation-grpc``'s grpc.aio
interceptor: it continues the caller's W3C ``traceparent`` and ``baggage``),
and a child span per call a hub makes to a backend, whose ``traceparent`` and
``baggage`` the backend continues in turn. Spans are exported as the
standard ``OTEL_*`` variables say: ``OTEL_TRACES_EXPORTER`` (``otlp``, the
default, ``console`` or ``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc``, the default, or
``http/protobuf``), ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER`` and the rest the SDK reads.

The Link stream (hours long) and health checks get no span. With tracing
off, nothing of this is imported and a hub passes the trace headers it
received on to the backend unchanged (see ``remote.passed_on``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from wsh.errors import Kind, WshError

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")
# Long-lived streams whose one span would last as long as the process.
UNTRACED_METHODS = ("/wsh.v1.BackendService/Link", "/grpc.health.v1.Health/")


def _traced(details: Any) -> bool:
    """The instrumentation's filter: False for the calls that get no span."""
    method = details.method
    if isinstance(method, bytes):  # grpc gives client-side methods as bytes
        method = method.decode()
    return not any(untraced in method for untraced in UNTRACED_METHODS)


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


class Tracing:
    """The tracer provider of one server and the interceptors that use it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

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

    def server_interceptor(self) -> grpc.aio.ServerInterceptor[Any, Any]:
        interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=_traced
        )
        return interceptor

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        interceptors: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=_traced
        )
        return interceptors

    def close(self) -> None:
        """Send the spans still buffered (blocks: run it off the event loop)."""
        self.provider.shutdown()


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
