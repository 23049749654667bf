"""Real wsh server processes for end-to-end tests."""

from __future__ import annotations

import atexit
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Self

import grpc
from google.rpc import error_details_pb2, status_pb2

from wsh.v1 import hub_pb2_grpc

READY = re.compile(rb"wsh: listening on (\S+) as (\S+) \(server_id (\S+),")
REPO = Path(__file__).resolve().parents[1]
# Servers run with a HOME of their own: a session's login shell then reads
# no profile of the machine's user (one whose pyenv init waited a minute on
# a lock left by a killed shell held every test using the default shell),
# and nothing a test does lands in the user's home.
SERVER_HOME = Path(tempfile.mkdtemp(prefix="wsh-test-home-"))
atexit.register(shutil.rmtree, SERVER_HOME, ignore_errors=True)


def read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a pipe, or TimeoutError: a hung child must not hang the test."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise TimeoutError(f"no output from server within {timeout:.1f}s")
        return stream.readline()
    finally:
        sel.close()


class ServerProc:
    """``wsh server`` as a subprocess on a free loopback port."""

    def __init__(
        self,
        hostname: str,
        *args: str,
        listen: str = "127.0.0.1:0",
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.hostname = hostname
        self.args = args
        self.listen = listen
        self.env = {**os.environ, "HOME": str(SERVER_HOME), **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = ""
        self.server_id = ""

    def argv(self) -> list[str]:
        """The command that runs this server."""
        return [
            sys.executable, "-m", "wsh", "server",
            "--listen", self.listen, "--hostname", self.hostname, *self.args,
        ]  # fmt: skip

    def start(self, timeout: float = 20.0) -> Self:
        stderr: Any = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=self.env,
            cwd=REPO,
        )
        if self.log_path:
            stderr.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line = read_line(self.proc.stdout, max(0.1, deadline - time.monotonic()))
            if not line:
                raise RuntimeError(f"server {self.hostname} exited: {self.proc.wait(5)}")
            match = READY.search(line)
            if match:
                self.addr = match.group(1).decode()
                self.server_id = match.group(3).decode()
                return self

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the server and wait for it; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        if self.proc.stdout:
            self.proc.stdout.close()
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def stub(addr: str) -> tuple[grpc.Channel, hub_pb2_grpc.HubServiceStub]:
    channel = grpc.insecure_channel(addr)
    return channel, hub_pb2_grpc.HubServiceStub(channel)


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo carried by a failed call (empty if none)."""
    for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return error_details_pb2.ErrorInfo()


def error_reason(err: grpc.RpcError) -> str:
    """The ErrorInfo reason carried by a failed call."""
    return error_info(err).reason


def error_metadata(err: grpc.RpcError) -> dict[str, str]:
    """The ErrorInfo metadata carried by a failed call."""
    return dict(error_info(err).metadata)


# grpc logs this, with a traceback, when a client cancels a stream while the
# server is writing to it: expected, not a failure of the server.
_BENIGN_TRACEBACK = "ExecuteBatchError raised in core by servicer method"


def assert_no_traceback(log: str) -> None:
    """A server log shows no exception other than grpc's benign one."""
    unexpected = log.count("Traceback") - log.count(_BENIGN_TRACEBACK)
    if unexpected > 0:
        at = log.index("Traceback")
        raise AssertionError(f"{unexpected} traceback(s) in the server log:\n{log[at:][:6000]}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def closed_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on (connection refused at once)."""
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float, describe: Any) -> None:
    """Return once ``proc`` accepts connections on loopback ``port``.

    ``describe()`` words what went wrong (a log); the process's exit or the
    timeout raises with it.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {describe()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{proc.args!r} not listening within {timeout}s: {describe()}"
                ) from None
            time.sleep(0.05)
