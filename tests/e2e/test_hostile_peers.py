"""Clients that try to starve or confuse the server (issue 15): idle connection
floods, rapid resets, bodies sent before the token is checked, malformed
bodies, and wrong tokens from the address good clients use.

Every attack is bounded in count and time; servers are real processes.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.peers import closed_by_server, idle_connections, rapid_reset
from tests.procs import ServerProc, assert_no_traceback, error_reason
from wsh.v1 import backend_pb2, hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

TOKEN = "correct-horse-battery-staple-42"
GOOD = (("authorization", f"Bearer {TOKEN}"),)
WRONG = (("authorization", "Bearer wrong-token-guess-0000"),)
RPC_TIMEOUT = 15.0
INFO = "/wsh.v1.HubService/GetServerInfo"
# More failures than the auth rate limit allows (10 per 30 s).
FAILURES = 12
BOMBS = 4
RESETS = 5000


class LimitedServer(ServerProc):
    """A server started with its open-file limit (soft and hard) set to ``nofile``."""

    def __init__(self, *args: str, nofile: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.nofile = nofile

    def argv(self) -> list[str]:
        wsh_args = self.super_argv()[3:]  # drop "python -m wsh"
        code = (
            "import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({self.nofile}, {self.nofile})); "
            f"sys.argv = ['wsh', *{wsh_args!r}]; "
            "runpy.run_module('wsh', run_name='__main__')"
        )
        return [sys.executable, "-c", code]

    def super_argv(self) -> list[str]:
        return super().argv()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    """A fresh server per test: the auth failure table starts empty."""
    with ServerProc(
        "peers",
        "--config",
        str(tmp_path / "c.toml"),
        env={"WSH_TOKEN": TOKEN},
        log_path=tmp_path / "server.log",
    ) as proc:
        yield proc


def raw(channel: grpc.Channel, method: str = INFO) -> grpc.UnaryUnaryMultiCallable:  # type: ignore[type-arg]
    """A unary call that sends and returns bytes as they are."""
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def failure(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value


def code_and_reason(err: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return err.code(), error_reason(err)  # type: ignore[attr-defined]


def vm_hwm(pid: int) -> int:
    """Peak resident memory of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_wrong_tokens_never_lock_out_the_right_token(server: ServerProc) -> None:
    """Behind a sidecar every client is 127.0.0.1: someone else's wrong
    guesses are throttled, calls with the token are not (issue 15.6)."""
    with grpc.insecure_channel(server.addr) as channel:
        stub = hub_pb2_grpc.HubServiceStub(channel)
        request = hub_pb2.GetServerInfoRequest()
        wrong = []
        for _ in range(FAILURES + 5):
            wrong.append(
                code_and_reason(
                    failure(
                        lambda: stub.GetServerInfo(request, metadata=WRONG, timeout=RPC_TIMEOUT)
                    )
                )
            )
            # Interleaved with the guesses, from the same address and connection.
            info = stub.GetServerInfo(request, metadata=GOOD, timeout=RPC_TIMEOUT)
            assert info.hostname == "peers"
        assert wrong[0] == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        assert wrong[-1] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "AUTH_RATE_LIMITED")
        no_token = failure(lambda: stub.GetServerInfo(request, timeout=RPC_TIMEOUT))
        assert code_and_reason(no_token) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "AUTH_RATE_LIMITED",
        )


def test_bodies_are_not_read_before_the_token_is_checked(server: ServerProc) -> None:
    """15 KiB of gzip that inflate to 15 MiB, sent without a token, cost the
    server nothing: the refusal comes before decompression (issue 15.5)."""
    bomb = hub_pb2.SendInputRequest(name="x", data=b"a" * (15 * 1024 * 1024)).SerializeToString()
    assert len(gzip.compress(bomb)) < 64 * 1024
    with grpc.insecure_channel(server.addr) as channel:
        send = raw(channel, "/wsh.v1.HubService/SendInput")
        # Let the server reach its steady size before measuring its peak.
        raw(channel)(b"", metadata=GOOD, timeout=RPC_TIMEOUT)
        before = vm_hwm(server.pid)
        codes = {
            code_and_reason(
                failure(lambda: send(bomb, compression=grpc.Compression.Gzip, timeout=RPC_TIMEOUT))
            )
            for _ in range(BOMBS)
        }
        grown = vm_hwm(server.pid) - before
    # Decompressing one of these and parsing it needs 30 MiB or more.
    assert grown < 8 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.1f} MiB"
    assert codes == {(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")}


def test_malformed_bodies_are_invalid_argument_without_a_traceback(server: ServerProc) -> None:
    """A body that does not parse is the client's error: INVALID_ARGUMENT, no
    parser internals, no traceback in the log (issue 15.5)."""
    garbage = b"\xff\xff\xff\xff\x0f"
    with grpc.insecure_channel(server.addr) as channel:
        for method in (INFO, "/wsh.v1.HubService/SendInput"):
            err = failure(
                lambda m=method: raw(channel, m)(garbage, metadata=GOOD, timeout=RPC_TIMEOUT)
            )  # type: ignore[misc]
            assert code_and_reason(err) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
            details = err.details() or ""  # type: ignore[attr-defined]
            assert "Error" not in details and "Wire format" not in details, details
        # Server streaming.
        race = channel.unary_stream(
            "/wsh.v1.HubService/RaceIdle", request_serializer=None, response_deserializer=None
        )
        err = failure(lambda: list(race(garbage, metadata=GOOD, timeout=RPC_TIMEOUT)))
        assert code_and_reason(err) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
        # Client streaming: the Link a hub opens, with a bad first and a bad later message.
        link = channel.stream_stream(
            "/wsh.v1.BackendService/Link", request_serializer=None, response_deserializer=None
        )
        hello = backend_pb2.LinkRequest(
            identity=backend_pb2.Identity(hostname="hub", server_id="x", version="1")
        ).SerializeToString()
        for messages in ([garbage], [hello, garbage]):
            err = failure(
                lambda m=messages: list(link(iter(m), metadata=GOOD, timeout=RPC_TIMEOUT))  # type: ignore[misc]
            )
            assert code_and_reason(err) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
        # Without a token the body is never parsed; the failures count.
        codes = [
            code_and_reason(failure(lambda: raw(channel)(garbage, timeout=RPC_TIMEOUT)))
            for _ in range(FAILURES)
        ]
        assert codes[0] == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
        assert codes[-1] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "AUTH_RATE_LIMITED")
    server.stop()
    assert server.log_path is not None
    log = server.log_path.read_text()
    assert "DecodeError" not in log
    assert_no_traceback(log)


def test_idle_connections_leave_room_for_calls_and_sessions(tmp_path: Path) -> None:
    """More idle TCP connections than descriptors: the server refuses those
    past its cap at once, drops the rest after the handshake timeout, and
    keeps serving calls and starting sessions meanwhile (issue 15.3)."""
    nofile, cap, flood = 256, 48, 300
    log_path = tmp_path / "server.log"
    with LimitedServer(
        "fdlimit",
        "--config",
        str(tmp_path / "c.toml"),
        "--max-connections",
        str(cap),
        nofile=nofile,
        env={"WSH_TOKEN": TOKEN},
        log_path=log_path,
    ) as proc:
        assert f"open-file limit {nofile} (was {nofile}); up to {cap} connections" in (
            log_path.read_text()
        )
        with grpc.insecure_channel(proc.addr) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            stub.GetServerInfo(hub_pb2.GetServerInfoRequest(), metadata=GOOD, timeout=RPC_TIMEOUT)
            with idle_connections(proc.addr, flood) as socks:
                time.sleep(0.5)
                refused = sum(closed_by_server(s) for s in socks)
                assert refused >= flood - cap, f"only {refused} of {flood} refused"
                # The connection already open keeps working, and sessions
                # (a PTY and a pidfd each) still find descriptors.
                for i in range(8):
                    stub.CreateSession(
                        hub_pb2.CreateSessionRequest(name=f"s{i}", command="cat"),
                        metadata=GOOD,
                        timeout=RPC_TIMEOUT,
                    )
                listed = stub.ListSessions(
                    hub_pb2.ListSessionsRequest(), metadata=GOOD, timeout=RPC_TIMEOUT
                )
                assert len(listed.sessions) == 8
                # Connections that never finish their handshake are dropped
                # after 10 s, freeing the slots for new clients.
                deadline = time.monotonic() + 20
                while not all(closed_by_server(s) for s in socks):
                    assert time.monotonic() < deadline, "idle connections still open after 20 s"
                    time.sleep(0.5)
            with grpc.insecure_channel(
                proc.addr, options=[("grpc.use_local_subchannel_pool", 1)]
            ) as fresh:
                hub_pb2_grpc.HubServiceStub(fresh).GetServerInfo(
                    hub_pb2.GetServerInfoRequest(), metadata=GOOD, timeout=RPC_TIMEOUT
                )
    assert_no_traceback(log_path.read_text())


def test_rapid_reset_is_cut_off_without_failing_others(server: ServerProc) -> None:
    """Streams opened and reset at once without a token (CVE-2023-44487): the
    attacker's connections are shut down, other clients' calls all succeed
    (issue 15.4; before, 38% of them were CANCELLED)."""
    errors: list[grpc.StatusCode] = []
    calls = 0
    attacking = threading.Event()
    attacking.set()

    def good_client() -> None:
        nonlocal calls
        with grpc.insecure_channel(server.addr) as channel:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            request = hub_pb2.GetServerInfoRequest()
            while attacking.is_set():
                try:
                    stub.GetServerInfo(request, metadata=GOOD, timeout=RPC_TIMEOUT)
                    calls += 1
                except grpc.RpcError as err:
                    errors.append(err.code())  # type: ignore[attr-defined]
                time.sleep(0.005)

    thread = threading.Thread(target=good_client, name="good-client")
    thread.start()
    try:
        # One connection after another, as an attacker reconnects.
        results = [rapid_reset(server.addr, RESETS, linger_s=10.0) for _ in range(3)]
    finally:
        attacking.clear()
        thread.join(RPC_TIMEOUT + 5)
    assert not errors, f"good client: {len(errors)} of {calls + len(errors)} failed: {errors[:5]}"
    assert calls > 0
    for result in results:
        assert result.closed or result.goaway, result
