"""Backend attacks for ``bench/hostile.py``: backends that cost the hub, take
another backend's name, or write into its log (issue 15, items 8 to 10).

The lying backend is ``tests/fake_backend.py`` from this tree, whatever code
the hub under test runs; the real backends run the hub's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _hostile as hx

from tests.procs import closed_ports
from wsh.v1 import hub_pb2

UNREACHABLE = 60
SETTLE_S = 12.0  # past the first, fast retries of every new backend
CPU_WINDOW_S = 4.0
WAIT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
FAKE_READY = re.compile(rb"fake: listening on (\S+)")
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def _hub_log(target: hx.Target) -> str:
    return "".join(p.read_text(errors="replace") for p in target.workdir.glob("hostile*.log"))


class _Fake:
    """``tests/fake_backend.py`` as a subprocess."""

    def __init__(self, workdir: Path, **config: object) -> None:
        with open(workdir / f"fake-{config['hostname']}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.fake_backend", json.dumps(config)],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=hx.REPO,
            )
        assert self.proc.stdout is not None
        match = FAKE_READY.search(self.proc.stdout.readline())
        if match is None:
            self.stop()
            raise RuntimeError("fake backend did not start")
        self.url = f"http://{match.group(1).decode()}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


async def _entry(hub_address: str, address: str) -> hub_pb2.Server | None:
    async with hx.Target(hub_address, None, 0, Path()).hub() as hub:
        listed = await hub.ListServers(hub_pb2.ListServersRequest(), timeout=WAIT_S)
    return next((s for s in listed.servers if s.address == address), None)


async def _add(hub_address: str, address: str, wait_ms: int) -> None:
    async with hx.Target(hub_address, None, 0, Path()).hub() as hub:
        await hub.AddServer(
            hub_pb2.AddServerRequest(address=address, wait=True, wait_timeout_ms=wait_ms),
            timeout=WAIT_S,
        )


async def _wait_settled(hub_address: str, address: str) -> str:
    """The backend's health once it is neither CONNECTING nor gone, described."""
    deadline = time.monotonic() + WAIT_S
    entry = await _entry(hub_address, address)
    while time.monotonic() < deadline and (
        entry is None or entry.health == hub_pb2.SERVER_HEALTH_CONNECTING
    ):
        await asyncio.sleep(0.1)
        entry = await _entry(hub_address, address)
    await asyncio.sleep(1)  # a name taken over shows as HEALTHY within this
    return _describe(await _entry(hub_address, address))


def _describe(entry: hub_pb2.Server | None) -> str:
    if entry is None:
        return "gone"
    name = hub_pb2.ServerHealth.Name(entry.health).removeprefix("SERVER_HEALTH_")
    reason = entry.last_error.split(":", 1)[0] if entry.last_error else ""
    return f"{name}{f' ({reason})' if reason else ''}"


async def _add_unreachable(address: str, token: str | None, ports: list[int]) -> list[float]:
    """AddServer each port on the hub at ``address``; the calls' times in ms."""
    hub = hx.Target(address, token, 0, Path())
    times: list[float] = []
    async with hub.hub() as stub:
        for port in ports:
            started = time.perf_counter()
            await stub.AddServer(
                hub_pb2.AddServerRequest(address=f"http://127.0.0.1:{port}"),
                metadata=hub.metadata(),
                timeout=WAIT_S,
            )
            times.append((time.perf_counter() - started) * 1000)
    return times


async def many_unreachable(target: hx.Target) -> str:
    """60 backends nobody listens on: AddServer's time and the probe's latency
    on the target; the idle CPU on a second hub with the same 60, which no
    probe calls (the probe's 100 calls/s would swamp the figure)."""
    ports = closed_ports(UNREACHABLE)
    quiet = target.start_server("quiet-hub")
    try:
        times, _ = await asyncio.gather(
            _add_unreachable(target.address, target.token, ports),
            _add_unreachable(quiet.address, None, ports),
        )
        await asyncio.sleep(SETTLE_S)
        cpu, started = _cpu_s(quiet.pid), time.monotonic()
        await asyncio.sleep(CPU_WINDOW_S)
        share = 100 * (_cpu_s(quiet.pid) - cpu) / (time.monotonic() - started)
    finally:
        quiet.stop()
    return (
        f"AddServer median {statistics.median(times):.1f} ms; an unprobed hub with "
        f"{UNREACHABLE} unreachable: {share:.1f}% of a core"
    )


async def hostname_takeover(target: hx.Target) -> str:
    """A backend is registered on a hub of its own (``takeover-hub``); both
    stop; the hub starts again while the backend is down, with an impostor
    claiming its name registered too; then the backend comes back."""
    real = target.start_server("victim-be")
    address = real.address
    hub = target.start_server("takeover-hub")
    fake: _Fake | None = None
    try:
        await _add(hub.address, f"http://{address}", wait_ms=5000)
        await asyncio.sleep(0.5)  # the owned name's write-back
        hub.stop()
        real.stop()
        fake = await asyncio.to_thread(_Fake, target.workdir, hostname="victim-be")
        await asyncio.to_thread(
            _append,
            target.workdir / "takeover-hub.toml",
            f'\n[[servers]]\naddress = "{fake.url}"\n',
        )
        hub = hx.start_server(target.code, target.workdir, "takeover-hub", listen=hub.address)
        impostor = await _wait_settled(hub.address, fake.url)
        real = hx.start_server(target.code, target.workdir, "victim-be", listen=address)
        await asyncio.sleep(3)
        owner = _describe(await _entry(hub.address, f"http://{address}"))
        return f"impostor {impostor}; owner after its restart: {owner}"
    finally:
        real.stop()
        hub.stop()
        if fake is not None:
            fake.stop()


async def forged_log_lines(target: hx.Target) -> str:
    """A backend whose Link errors carry escape sequences, a newline that starts
    a forged log record, and the token the hub presented to it."""
    token = "hostile-backend-token-0123456789"
    fake = await asyncio.to_thread(_Fake, target.workdir, hostname="liar", link="echo")
    try:
        async with target.hub() as hub:
            await hub.AddServer(
                hub_pb2.AddServerRequest(
                    address=fake.url, token=token, wait=True, wait_timeout_ms=3000
                ),
                metadata=target.metadata(),
                timeout=WAIT_S,
            )
        await asyncio.sleep(2)
    finally:
        fake.stop()
    log = _hub_log(target)
    forged = sum(1 for line in log.splitlines() if line and not RECORD.match(line))
    escapes = log.count("\x1b")
    return (
        f"log lines not records: {forged}; raw ESC: {escapes}; "
        f"token in log: {'YES' if token in log else 'no'}"
    )


ATTACKS: hx.Attacks = [
    ("backends: 60 unreachable", many_unreachable),
    ("backends: hostname takeover", hostname_takeover),
    ("backends: forged log lines", forged_log_lines),
]
