"""What a hub passes on to a backend of its caller's headers: ``x-request-id``
unchanged, and the W3C trace headers unchanged with tracing off, or continued
by the hub's own span with tracing on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.calls import RPC_TIMEOUT
from tests.cluster import wait_until
from tests.fakes import FakeBackend
from tests.procs import ServerProc, stub
from wsh.v1 import hub_pb2

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SENT = (
    ("x-request-id", "req-7f3a"),
    ("traceparent", TRACEPARENT),
    ("tracestate", "vendor=opaque"),
    ("baggage", "tenant=acme"),
)


def forwarded_headers(
    tmp: Path, *hub_args: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers a fake backend got with a GetSession the hub forwarded."""
    headers = tmp / "headers.jsonl"
    fake = FakeBackend(tmp, "fake-1", headers=str(headers)).start()
    try:
        with ServerProc("hub", *hub_args, env=env, log_path=tmp / "hub.log") as hub:
            channel, client = stub(hub.addr)
            with channel:
                added = client.AddServer(
                    hub_pb2.AddServerRequest(address=fake.url, wait=True), timeout=RPC_TIMEOUT
                ).server
                assert added.health == hub_pb2.SERVER_HEALTH_HEALTHY, added
                client.GetSession(
                    hub_pb2.GetSessionRequest(name="s", server="fake-1"),
                    metadata=SENT,
                    timeout=RPC_TIMEOUT,
                )
    finally:
        fake.stop()
    lines = headers.read_text().splitlines()
    assert len(lines) == 1, lines
    got: dict[str, str] = json.loads(lines[0])
    return got


def test_without_tracing_the_headers_go_on_unchanged(tmp_path: Path) -> None:
    assert forwarded_headers(tmp_path) == dict(SENT)


def test_with_tracing_the_backend_gets_the_hubs_child_span(tmp_path: Path) -> None:
    got = forwarded_headers(tmp_path, "--tracing", env={"OTEL_TRACES_EXPORTER": "none"})
    assert got["x-request-id"] == "req-7f3a"
    assert got["baggage"] == "tenant=acme"
    version, trace_id, parent, flags = got["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    # The parent is now the hub's span for its call, not the caller's.
    assert parent != "00f067aa0ba902b7"


def test_json_logs_carry_the_trace_id(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    with ServerProc(
        "hub",
        "--tracing",
        "--log-format",
        "json",
        "--log-level",
        "debug",
        env={"OTEL_TRACES_EXPORTER": "none"},
        log_path=log,
    ) as hub:
        channel, client = stub(hub.addr)
        with channel:
            client.AddServer(
                hub_pb2.AddServerRequest(address="http://127.0.0.1:1", wait=False),
                metadata=(("traceparent", TRACEPARENT),),
                timeout=RPC_TIMEOUT,
            )
            wait_until(lambda: "unavailable" in log.read_text(), what="the link to fail")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), records
    # Logged by AddServer (this hub keeps no config file): in the caller's trace.
    (unsaved,) = [r for r in records if "are not saved" in r["message"]]
    assert unsaved["trace_id"] == TRACE_ID
    # Logged by the backend's link task, which outlives the call: no trace.
    failed = [r for r in records if "-> unavailable" in r["message"]]
    assert failed and all("trace_id" not in r for r in failed), failed
