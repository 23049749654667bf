"""``wsh web``'s gRPC-Web bridge against a real hub: calls, statuses, token, origins."""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.cluster import wait_until
from tests.procs import REPO, ServerProc, stub
from tests.web.webproc import CONTENT_TYPE, WebProc, grpc_web_call
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

TOKEN = "web-bridge-token-0123456789"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("hub")
    with ServerProc("hub", "--config", str(tmp / "hub.toml"), log_path=tmp / "hub.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def hub_stub(hub: ServerProc) -> Iterator[hub_pb2_grpc.HubServiceStub]:
    channel, hub_stub = stub(hub.addr)
    yield hub_stub
    channel.close()


@pytest.fixture(scope="module")
def web(hub: ServerProc) -> Iterator[WebProc]:
    with WebProc(hub.addr, env={"WSH_TOKEN": ""}) as proc:
        yield proc


def test_unary_call_answers_as_the_hub(web: WebProc) -> None:
    reply = grpc_web_call(web.port, "ListServers", hub_pb2.ListServersRequest())
    assert reply.http_status == 200
    assert reply.code == 0, reply.trailers
    (message,) = reply.messages
    servers = hub_pb2.ListServersResponse.FromString(message).servers
    assert [server.hostname for server in servers] == ["hub"]


def test_error_status_carries_its_reason(web: WebProc) -> None:
    reply = grpc_web_call(web.port, "GetSession", hub_pb2.GetSessionRequest(name="nope"))
    assert reply.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert reply.reason == "SESSION_NOT_FOUND"
    assert "nope" in reply.message


def test_server_stream_relays_each_message(
    web: WebProc, hub_stub: hub_pb2_grpc.HubServiceStub
) -> None:
    hub_stub.CreateSession(
        hub_pb2.CreateSessionRequest(name="raced", command="bash", tags=["bridge"]), timeout=10
    )
    try:
        request = hub_pb2.RaceIdleRequest(tags=["bridge"], timeout_ms=100, max_results=1)
        reply = grpc_web_call(web.port, "RaceIdle", request)
        assert reply.code == 0, reply.trailers
        (message,) = reply.messages
        assert hub_pb2.RaceIdleResponse.FromString(message).idle.session == "raced"
    finally:
        hub_stub.KillSession(hub_pb2.KillSessionRequest(name="raced"), timeout=10)


def test_attach_is_a_server_stream_from_its_start(
    web: WebProc, hub_stub: hub_pb2_grpc.HubServiceStub
) -> None:
    # A session that prints after the start has been sent, then exits: the
    # output must still come although the request side closed after start.
    hub_stub.CreateSession(
        hub_pb2.CreateSessionRequest(name="watched", command="sleep 0.5; echo late-output"),
        timeout=10,
    )
    start = hub_pb2.AttachRequest(
        start=hub_pb2.AttachStart(name="watched", mode=hub_pb2.ATTACH_MODE_READ_ONLY)
    )
    reply = grpc_web_call(web.port, "Attach", start)
    assert reply.code == 0, reply.trailers
    answers = [hub_pb2.AttachResponse.FromString(m) for m in reply.messages]
    kinds = [a.WhichOneof("response") for a in answers]
    assert kinds[0] == "snapshot" and kinds[-1] == "end", kinds
    assert b"late-output" in b"".join(a.output for a in answers)
    assert answers[-1].end.exit_code == 0


def test_deadline_goes_to_the_hub(web: WebProc, hub_stub: hub_pb2_grpc.HubServiceStub) -> None:
    hub_stub.CreateSession(
        hub_pb2.CreateSessionRequest(name="slow", command="sleep 600", tags=["slow"]), timeout=10
    )
    try:
        request = hub_pb2.RaceIdleRequest(tags=["slow"], timeout_ms=300_000, max_wait_ms=300_000)
        reply = grpc_web_call(web.port, "RaceIdle", request, headers={"grpc-timeout": "300m"})
        assert reply.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], reply.trailers
    finally:
        hub_stub.KillSession(hub_pb2.KillSessionRequest(name="slow"), timeout=10)


def test_closed_browser_stream_ends_the_hub_call(
    hub: ServerProc, hub_stub: hub_pb2_grpc.HubServiceStub
) -> None:
    hub_stub.CreateSession(
        hub_pb2.CreateSessionRequest(name="held", command="sleep 600", tags=["held"]), timeout=10
    )
    web = WebProc(hub.addr, env={"WSH_TOKEN": ""}).start()
    try:
        body = hub_pb2.RaceIdleRequest(
            tags=["held"], timeout_ms=300_000, max_wait_ms=300_000
        ).SerializeToString()
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        conn.request(
            "POST",
            "/wsh.v1.HubService/RaceIdle",
            body=struct.pack(">BI", 0, len(body)) + body,
            headers={"content-type": CONTENT_TYPE},
        )
        assert conn.getresponse().status == 200

        def races() -> int:
            info = hub_stub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=10)
            return int(info.stats.races)

        wait_until(lambda: races() == 1, timeout=15, what="the race open on the hub")
        # A browser closing the tab: the socket goes, the hub's race must end.
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        wait_until(lambda: races() == 0, timeout=15, what="the race ended on the hub")
    finally:
        hub_stub.KillSession(hub_pb2.KillSessionRequest(name="held"), timeout=10)
        code, log = web.stop()
    assert code == 0
    assert "Traceback" not in log and "Error" not in log, log


def test_stops_at_once_with_a_stream_open(
    hub: ServerProc, hub_stub: hub_pb2_grpc.HubServiceStub
) -> None:
    hub_stub.CreateSession(
        hub_pb2.CreateSessionRequest(name="open", command="sleep 600"), timeout=10
    )
    web = WebProc(hub.addr, env={"WSH_TOKEN": ""}).start()
    try:
        start = hub_pb2.AttachRequest(start=hub_pb2.AttachStart(name="open"))
        body = start.SerializeToString()
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
        conn.request(
            "POST",
            "/wsh.v1.HubService/Attach",
            body=struct.pack(">BI", 0, len(body)) + body,
            headers={"content-type": CONTENT_TYPE},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.read1(65536)  # the snapshot: the stream is open
        began = time.monotonic()
        code, log = web.stop(timeout=10)
        # The browser's stream ends too (cut, or with a last status): it does
        # not hang open.
        with contextlib.suppress(http.client.IncompleteRead):
            response.read()
        conn.close()
    finally:
        if web.proc is not None and web.proc.poll() is None:
            web.stop()
        hub_stub.KillSession(hub_pb2.KillSessionRequest(name="open"), timeout=10)
    assert code == 0 and "Traceback" not in log, log
    assert time.monotonic() - began < 5


def test_malformed_body_is_invalid_argument(web: WebProc) -> None:
    reply = grpc_web_call(web.port, "ListSessions", struct.pack(">BI", 1, 3) + b"abc")
    # The helper frames the bytes again: a frame inside a frame is one message
    # that does not parse, which the hub refuses like any client's.
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert reply.reason == "MALFORMED_REQUEST"


def test_compressed_frame_is_refused_by_the_bridge(web: WebProc) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    conn.request(
        "POST",
        "/wsh.v1.HubService/ListSessions",
        body=struct.pack(">BI", 1, 0),
        headers={"content-type": CONTENT_TYPE},
    )
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert b"grpc-status: 3" in body and b"MALFORMED_REQUEST" not in body


def _plain(
    port: int, method: str, path: str, headers: dict[str, str]
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def test_page_is_served_with_a_strict_policy(web: WebProc) -> None:
    status, body, headers = _plain(web.port, "GET", "/", {})
    assert status == 200 and b"<title>wsh" in body
    policy = {k.lower(): v for k, v in headers.items()}["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_unknown_host_is_refused_against_dns_rebinding(web: WebProc) -> None:
    status, _, _ = _plain(web.port, "GET", "/", {"host": f"rebound.example:{web.port}"})
    assert status == 421
    status, _, _ = _plain(web.port, "GET", "/", {"host": f"localhost:{web.port}"})
    assert status == 200


def test_cross_origin_call_is_refused(web: WebProc) -> None:
    reply_status, _, _ = _plain(
        web.port,
        "POST",
        "/wsh.v1.HubService/ListSessions",
        {"content-type": CONTENT_TYPE, "origin": "http://elsewhere.example"},
    )
    assert reply_status == 403


def test_unknown_method_and_other_services_are_not_found(web: WebProc) -> None:
    for path in ("/wsh.v1.HubService/Nope", "/wsh.v1.BackendService/Link"):
        status, _, _ = _plain(web.port, "POST", path, {"content-type": CONTENT_TYPE})
        assert status == 404, path


@pytest.fixture(scope="module")
def guarded_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("guarded")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with ServerProc(
        "guarded", "--config", str(tmp / "hub.toml"), "--token-file", str(token_file)
    ) as proc:
        yield proc


def test_token_is_checked_before_the_hub(guarded_hub: ServerProc, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with WebProc(guarded_hub.addr, "--token-file", str(token_file)) as web:
        request = hub_pb2.ListSessionsRequest()
        missing = grpc_web_call(web.port, "ListSessions", request)
        assert missing.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert missing.reason == "UNAUTHENTICATED"
        wrong = grpc_web_call(
            web.port, "ListSessions", request, headers={"authorization": "Bearer x" * 3}
        )
        assert wrong.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        right = grpc_web_call(
            web.port, "ListSessions", request, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert right.code == 0, right.trailers
        _, log = web.stop()
    assert TOKEN not in log and TOKEN not in "".join(web.lines)


def test_without_a_token_of_its_own_the_hub_decides(guarded_hub: ServerProc) -> None:
    with WebProc(guarded_hub.addr, env={"WSH_TOKEN": ""}) as web:
        request = hub_pb2.ListSessionsRequest()
        refused = grpc_web_call(web.port, "ListSessions", request)
        assert refused.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        right = grpc_web_call(
            web.port, "ListSessions", request, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert right.code == 0, right.trailers


def test_off_loopback_requires_a_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wsh", "web", "--listen", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert "TOKEN_REQUIRED" in done.stderr
    assert "Traceback" not in done.stderr
