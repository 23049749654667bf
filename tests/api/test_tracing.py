"""Traces across a hub and its backend: real servers, real gRPC calls on
loopback, in one process so that both servers' spans land in one in-memory
exporter."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from wsh.api.tracing import TraceIds, Tracing
from wsh.config import ServerConfig
from wsh.server import WshServer
from wsh.v1 import hub_pb2, hub_pb2_grpc

# The caller's trace: 32 and 16 hex digits, sampled.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def hub_and_backend(
    exporter: InMemorySpanExporter,
) -> AsyncIterator[tuple[WshServer, WshServer]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    backend = WshServer(
        ServerConfig(listen="127.0.0.1:0", hostname="traced-backend", tracing=True), tracing
    )
    hub = WshServer(
        ServerConfig(listen="127.0.0.1:0", hostname="traced-hub", tracing=True), tracing
    )
    started: list[WshServer] = []
    try:
        for server in (backend, hub):
            await server.start()
            started.append(server)
        await hub.federation.add_server(
            f"http://{backend.address}", None, wait=True, wait_timeout_s=10
        )
        yield hub, backend
    finally:
        for server in reversed(started):
            await server.stop()


async def test_a_forwarded_call_continues_the_trace_on_the_backend(
    hub_and_backend: tuple[WshServer, WshServer], exporter: InMemorySpanExporter
) -> None:
    hub, _backend = hub_and_backend
    async with grpc.aio.insecure_channel(hub.address) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        await stub.CreateSession(
            hub_pb2.CreateSessionRequest(name="traced", server="traced-backend", command="cat"),
            metadata=(("traceparent", TRACEPARENT), ("x-request-id", "req-42")),
            timeout=15,
        )
        await stub.KillSession(hub_pb2.KillSessionRequest(name="traced"), timeout=15)

    spans = exporter.get_finished_spans()
    created = [s for s in spans if s.name == "/wsh.v1.HubService/CreateSession"]
    servers = [s for s in created if s.kind is SpanKind.SERVER]
    clients = [s for s in created if s.kind is SpanKind.CLIENT]
    assert len(servers) == 2 and len(clients) == 1, [(s.name, s.kind) for s in spans]
    # The hub's span continues the caller's trace...
    on_hub = next(
        s for s in servers if s.parent is not None and f"{s.parent.span_id:016x}" == CALLER_SPAN
    )
    assert on_hub.context is not None
    assert format(on_hub.context.trace_id, "032x") == TRACE_ID
    # ...its call to the backend is its child...
    call = clients[0]
    assert call.parent is not None and call.context is not None
    assert call.parent.span_id == on_hub.context.span_id
    # ...and the backend's span is the child of that call: same trace.
    on_backend = next(s for s in servers if s is not on_hub)
    assert on_backend.parent is not None and on_backend.parent.is_remote
    assert on_backend.parent.span_id == call.context.span_id
    assert on_backend.context is not None
    assert on_backend.context.trace_id == on_hub.context.trace_id
    # The Link (a stream as long as the process) gets no span.
    assert not [s for s in spans if "Link" in s.name]


async def test_log_records_carry_the_trace_id(
    hub_and_backend: tuple[WshServer, WshServer],
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub, _backend = hub_and_backend
    caplog.handler.addFilter(TraceIds())
    caplog.set_level(logging.INFO)
    tracer = hub.tracing.provider.get_tracer("test") if hub.tracing else None
    assert tracer is not None
    with tracer.start_as_current_span("logged") as span:
        logging.getLogger("wsh.test").info("inside a span")
    logging.getLogger("wsh.test").info("outside")
    inside, outside = (r for r in caplog.records if r.name == "wsh.test")
    assert inside.__dict__["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert outside.__dict__["trace_id"] == ""
