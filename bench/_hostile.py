"""Shared plumbing for ``bench/hostile.py``: the target an attack runs against,
and the helpers attack modules build on.

An attack module (``bench/hostile_output.py``, ``bench/hostile_peers.py``,
``bench/hostile_backends.py``) exposes ``ATTACKS``: a list of
``(name, coroutine function)``. ``hostile.py`` starts a fresh ``wsh server``
per attack, runs the attack's coroutine with a :class:`Target` describing that
server while a probe thread calls GetServerInfo every 10 ms and a sampler
thread reads the server's RSS from ``/proc/PID/status`` every 50 ms, then
prints one row per attack. An attack must be bounded in time (it is cancelled
after ``ATTACK_TIMEOUT_S``) and returns a one-line note for the table.

The server's code is chosen by ``--server-python`` and ``--server-cwd`` (the
interpreter and the directory ``python -m wsh`` runs from), so the same attacks
can be replayed against an older checkout (``git worktree add``); the
benchmark itself only talks gRPC to it.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from wsh.v1 import hub_pb2_grpc  # noqa: E402

READY = re.compile(rb"wsh: listening on (\S+) as (\S+) \(server_id (\S+),")
ATTACK_TIMEOUT_S = 30.0  # an attack still running then is cancelled
START_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class ServerCode:
    """Which code a benchmark server runs: ``python -m wsh server`` from ``cwd``."""

    python: str = sys.executable
    cwd: Path = REPO


@dataclass(slots=True)
class ServerHandle:
    """A running ``wsh server`` subprocess started by :func:`start_server`."""

    proc: subprocess.Popen[bytes]
    address: str
    server_id: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_server(
    code: ServerCode,
    workdir: Path,
    hostname: str,
    *args: str,
    token: str | None = None,
    listen: str = "127.0.0.1:0",
) -> ServerHandle:
    """A ``wsh server`` on a free loopback port with a scratch config and log
    in ``workdir``. The caller stops it (``ServerHandle.stop``)."""
    log_path = workdir / f"{hostname}.log"
    argv = [
        code.python, "-m", "wsh", "server", "--listen", listen, "--hostname", hostname,
        "--config", str(workdir / f"{hostname}.toml"), *args,
    ]  # fmt: skip
    if token is not None:
        argv.append(f"--token={token}")  # a token may start with "-"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, cwd=code.cwd)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                proc.kill()
                proc.wait(5)
                raise TimeoutError(f"server {hostname} not ready in {START_TIMEOUT_S:.0f}s")
            line = proc.stdout.readline()
            if not line:
                code_ = proc.wait(5)
                raise RuntimeError(f"server {hostname} exited ({code_}) before listening")
            match = READY.search(line)
            if match:
                return ServerHandle(
                    proc, match.group(1).decode(), match.group(3).decode(), log_path
                )
    finally:
        sel.close()


@dataclass(frozen=True, slots=True)
class Target:
    """The server an attack runs against (fresh for each attack)."""

    address: str  # host:port, loopback
    token: str | None  # bearer token the server requires, if any
    pid: int  # the server's process id, for /proc/PID/status
    workdir: Path  # scratch directory for this attack: files, extra configs, logs
    code: ServerCode = field(default_factory=ServerCode)  # to start more servers alike

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the token, when the server requires one."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    @contextlib.asynccontextmanager
    async def hub(
        self, options: Sequence[tuple[str, int]] = ()
    ) -> AsyncIterator[hub_pb2_grpc.HubServiceAsyncStub]:
        """An asyncio HubService stub on a channel of its own, closed on exit.

        Pass the token with ``metadata=target.metadata()`` on each call.
        ``options`` are channel options, e.g. a larger
        ``grpc.max_receive_message_length`` to see an oversized response.
        """
        channel = grpc.aio.insecure_channel(self.address, options=list(options))
        try:
            yield hub_pb2_grpc.HubServiceStub(channel)  # the async stub, on an aio channel
        finally:
            await channel.close(grace=None)

    def start_server(self, hostname: str, *args: str) -> ServerHandle:
        """Another server running the same code (e.g. a peer or a backend), with
        its files in ``workdir``. The attack stops it before returning."""
        return start_server(self.code, self.workdir, hostname, *args)


Attack: TypeAlias = Callable[[Target], Awaitable[str]]
Attacks: TypeAlias = list[tuple[str, Attack]]


def read_rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes; (0, 0) once the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def pty_payload_file(workdir: Path, name: str, payload: bytes) -> Path:
    """Write ``payload`` to ``workdir/name`` so a session can ``cat`` it."""
    path = workdir / name
    path.write_bytes(payload)
    os.chmod(path, 0o644)
    return path
