"""Two private network namespaces joined by a veth pair, and faults on that link.

A hub runs in one namespace and a backend in the other; the veth between
them is the only path, so the tests can cut it (link down, or an nftables
drop that silently loses every packet), slow it (tbf) or make it lossy
(nftables ``numgen random``). Every address lives inside those two
namespaces: nothing is added to the namespace the tests run in. The test
process reaches the hub through a Unix socket, which crosses network
namespaces.

Names carry the creating process's pid, so a later run can tell a leftover
of a dead run (removed at start) from a namespace that a parallel run is
using right now.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from tests.procs import REPO, ServerProc
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

HUB_PREFIX = "wsh-hub-"
BACKEND_PREFIX = "wsh-be-"
_OURS = re.compile(r"^wsh-(?:hub|be)-(\d+)-[0-9a-f]+$")
NETNS_DIR = Path("/run/netns")
HUB_DEV = "vhub"
BACKEND_DEV = "vbe"
# One nftables table per namespace holds every fault rule; deleting it
# removes them all.
NFT_TABLE = "wshfault"
CMD_TIMEOUT = 15.0


class Unsupported(Exception):
    """Network namespaces or veth pairs cannot be made here (a reason to skip)."""


def in_namespace(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def run(
    *cmd: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout; a failure raises with its stderr."""
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT, input=stdin, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
        )
    return done


def missing_tools() -> list[str]:
    return [tool for tool in ("ip", "nft", "tc") if shutil.which(tool) is None]


def namespace_pids(ns: str) -> list[int]:
    done = run("ip", "netns", "pids", ns, check=False)
    return [int(pid) for pid in done.stdout.split() if pid.isdigit()]


def kill_namespace_processes(ns: str, timeout: float = 5.0) -> None:
    """SIGKILL everything still running in ``ns`` and wait until it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        pids = namespace_pids(ns)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in namespace {ns} survive SIGKILL")
        time.sleep(0.05)


def delete_namespace(ns: str) -> None:
    kill_namespace_processes(ns)
    # Deleting the namespace deletes the veth end in it, and the peer with it.
    run("ip", "netns", "delete", ns, check=False)


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, StopIteration, IndexError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def remove_leftovers() -> list[str]:
    """Delete our namespaces whose creating process is gone; returns their names.

    A creator pid that now belongs to a process started after the namespace
    was made is a reused pid: that namespace is a leftover too.
    """
    if not NETNS_DIR.is_dir():
        return []
    removed = []
    for entry in NETNS_DIR.iterdir():
        match = _OURS.match(entry.name)
        if not match:
            continue
        creator = int(match.group(1))
        try:
            created = entry.stat().st_mtime
        except FileNotFoundError:
            continue
        started = _process_start(creator)
        if started is not None and started <= created + 1:
            continue  # its creator still runs (this run, or a parallel one)
        try:
            delete_namespace(entry.name)
        except RuntimeError:
            continue  # best effort: a stuck leftover does not stop this run
        removed.append(entry.name)
    return removed


class NetPair:
    """``hub_ns`` and ``backend_ns`` with a /30 on the veth between them.

    ``create()`` raises ``Unsupported`` only when namespaces or veth pairs
    cannot be made at all; any later failure is a real error.
    """

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.hub_ns = HUB_PREFIX + tag
        self.backend_ns = BACKEND_PREFIX + tag
        # The addresses exist only inside the two namespaces, so any /30 does.
        net = f"10.213.{secrets.randbelow(256)}"
        self.hub_ip = f"{net}.1"
        self.backend_ip = f"{net}.2"
        self._created: list[str] = []

    # -- setup and teardown -----------------------------------------------

    def create(self) -> NetPair:
        if os.geteuid() != 0:
            raise Unsupported("needs root to create network namespaces (ip netns add)")
        if shutil.which("ip") is None:
            raise Unsupported("the ip command (iproute2) is not installed")
        remove_leftovers()
        for ns in (self.hub_ns, self.backend_ns):
            done = run("ip", "netns", "add", ns, check=False)
            if done.returncode != 0:
                self.destroy()
                raise Unsupported(f"ip netns add {ns} failed: {done.stderr.strip()}")
            self._created.append(ns)
        veth = f"link add {HUB_DEV} type veth peer name {BACKEND_DEV} netns {self.backend_ns}"
        done = run("ip", "-n", self.hub_ns, *veth.split(), check=False)
        if done.returncode != 0:
            self.destroy()
            raise Unsupported(f"cannot create a veth pair: {done.stderr.strip()}")
        try:
            for ns, dev, ip in (
                (self.hub_ns, HUB_DEV, self.hub_ip),
                (self.backend_ns, BACKEND_DEV, self.backend_ip),
            ):
                run("ip", "-n", ns, "link", "set", "lo", "up")
                run("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
                run("ip", "-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        """Kill every process in both namespaces and delete them (idempotent)."""
        errors = []
        for ns in reversed(self._created):
            try:
                delete_namespace(ns)
            except Exception as exc:  # keep going: the other one must go too
                errors.append(str(exc))
        self._created.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> NetPair:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- commands in a namespace ------------------------------------------

    def exec(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*in_namespace(ns, *cmd), check=check)

    def _ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return ((self.hub_ns, HUB_DEV), (self.backend_ns, BACKEND_DEV))

    # -- faults -------------------------------------------------------------

    def link_down(self) -> None:
        """Take the hub's end of the veth down (the backend's loses its carrier)."""
        run("ip", "-n", self.hub_ns, "link", "set", HUB_DEV, "down")

    def link_up(self) -> None:
        run("ip", "-n", self.hub_ns, "link", "set", HUB_DEV, "up")

    def _nft_input_rule(self, rule: str) -> None:
        """One input-hook rule on the veth, in both namespaces: packets are sent
        but never arrive, like a partition somewhere along the way."""
        if shutil.which("nft") is None:
            raise RuntimeError("nft is not installed: run scripts/setup (Debian package nftables)")
        self.unblock()  # one fault at a time
        for ns, dev in self._ends():
            script = (
                f"table inet {NFT_TABLE} {{\n"
                f"  chain input {{\n"
                f"    type filter hook input priority 0; policy accept;\n"
                f'    iifname "{dev}" {rule}\n'
                f"  }}\n"
                f"}}\n"
            )
            run(*in_namespace(ns, "nft", "-f", "-"), stdin=script)

    def block(self) -> None:
        """Drop every packet on the link, both ways, silently."""
        self._nft_input_rule("drop")

    def lossy(self, percent: int) -> None:
        """Drop ``percent``% of the packets arriving at each end, at random."""
        self._nft_input_rule(f"numgen random mod 100 < {percent} drop")

    def unblock(self) -> None:
        """Remove every nftables fault rule."""
        for ns, _dev in self._ends():
            self.exec(ns, "nft", "delete", "table", "inet", NFT_TABLE, check=False)

    def slow(self, rate: str = "256kbit", burst: str = "16kb", latency: str = "400ms") -> None:
        """A token bucket on both ends' egress: ``rate`` each way."""
        for ns, dev in self._ends():
            qdisc = f"qdisc replace dev {dev} root tbf rate {rate} burst {burst} latency {latency}"
            self.exec(ns, "tc", *qdisc.split())

    def unslow(self) -> None:
        for ns, dev in self._ends():
            self.exec(ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)

    def heal(self) -> None:
        """Undo every fault: link up, no nftables rules, no qdisc."""
        self.unblock()
        self.unslow()
        self.link_up()


class NsServerProc(ServerProc):
    """``wsh server`` started inside a network namespace with ``ip netns exec``.

    ``ip netns exec`` execs the command in place, so ``pid`` is the server's
    own and signals reach it directly.
    """

    def __init__(self, ns: str, hostname: str, *args: str, **kwargs: Any) -> None:
        super().__init__(hostname, *args, **kwargs)
        self.ns = ns

    def argv(self) -> list[str]:
        return in_namespace(self.ns, *super().argv())

    def open_fds(self) -> int:
        """Descriptors the server holds, read from /proc (any namespace)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))


_INFO_SNIPPET = """
import json, sys
import grpc
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2
with grpc.insecure_channel(sys.argv[1]) as channel:
    stats = hub_pb2_grpc.HubServiceStub(channel).GetServerInfo(
        hub_pb2.GetServerInfoRequest(), timeout=10,
        metadata=(("authorization", "Bearer " + sys.stdin.read()),),
    ).stats
print(json.dumps({f.name: getattr(stats, f.name) for f in stats.DESCRIPTOR.fields}))
"""


def server_stats_in(ns: str, addr: str, token: str) -> dict[str, int]:
    """``GetServerInfo().stats`` of a server that only ``ns`` can reach (token on stdin)."""
    done = subprocess.run(
        in_namespace(ns, sys.executable, "-c", _INFO_SNIPPET, addr),
        input=token,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"GetServerInfo on {addr} in {ns} failed: {done.stderr.strip()[-500:]}")
    stats: dict[str, int] = json.loads(done.stdout)
    return stats


class FaultCluster:
    """A hub with two backends, one of them behind the link ``net`` controls.

    * ``far``: a backend in ``net.backend_ns`` on ``backend_ip:7600`` (not
      loopback, so it needs a token);
    * ``hub``: in ``net.hub_ns``, serving on a Unix socket that the test
      process (in its own namespace) connects to;
    * ``near``: a backend on the hub namespace's loopback, untouched by the
      faults, to show that the rest of the cluster carries on.
    """

    def __init__(self, net: NetPair, tmp: Path, token: str, sock_dir: Path) -> None:
        self.net = net
        self.tmp = tmp
        self.token = token
        self.hub_config = tmp / "hub.toml"
        self.far = NsServerProc(
            net.backend_ns,
            "far",
            *("--config", str(tmp / "far.toml"), "--token", token),
            listen=f"{net.backend_ip}:7600",
            log_path=tmp / "far.log",
        )
        self.near = NsServerProc(
            net.hub_ns,
            "near",
            *("--config", str(tmp / "near.toml"), "--token", token),
            log_path=tmp / "near.log",
        )
        self.hub = NsServerProc(
            net.hub_ns,
            "hub",
            *("--config", str(self.hub_config)),
            listen=f"unix:{sock_dir / 'hub.sock'}",
            log_path=tmp / "hub.log",
        )
        self.channel: grpc.Channel | None = None
        self._stub: hub_pb2_grpc.HubServiceStub | None = None

    @property
    def stub(self) -> hub_pb2_grpc.HubServiceStub:
        assert self._stub is not None
        return self._stub

    def start(self) -> FaultCluster:
        # The hub reaches both backends with the default token.
        self.hub_config.write_text(f'default_token = "{self.token}"\n')
        self.hub_config.chmod(0o600)
        for proc in (self.far, self.near, self.hub):
            proc.start()
        self.channel = grpc.insecure_channel(self.hub.addr)
        self._stub = hub_pb2_grpc.HubServiceStub(self.channel)
        for backend in (self.far, self.near):
            added = self.stub.AddServer(
                hub_pb2.AddServerRequest(address=backend.url, wait=True), timeout=30
            ).server
            if added.health != hub_pb2.SERVER_HEALTH_HEALTHY:
                raise RuntimeError(f"backend {backend.hostname} did not link: {added}")
        return self

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        errors = []
        for proc in (self.hub, self.near, self.far):
            if proc.proc is not None and proc.proc.poll() is None:
                try:
                    proc.stop()
                except Exception as exc:  # the namespace teardown kills what is left
                    errors.append(f"{proc.hostname}: {exc}")
        if errors:
            raise RuntimeError("; ".join(errors))

    def healths(self) -> dict[str, hub_pb2.Server]:
        servers = self.stub.ListServers(hub_pb2.ListServersRequest(), timeout=10).servers
        return {server.hostname: server for server in servers}

    def health(self, hostname: str) -> int:
        return self.healths()[hostname].health

    def hub_stats(self) -> hub_pb2.ServerStats:
        return self.stub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=10).stats

    def far_stats(self) -> dict[str, int]:
        return server_stats_in(self.net.backend_ns, self.far.addr, self.token)


class RaceReader:
    """A RaceIdle stream through the hub, read on a thread into a queue."""

    def __init__(self, hub: hub_pb2_grpc.HubServiceStub, tags: list[str]) -> None:
        req = hub_pb2.RaceIdleRequest(tags=tags, timeout_ms=300, max_wait_ms=300_000)
        self.stream = hub.RaceIdle(req, timeout=600)
        self.items: queue.Queue[types_pb2.Idle | grpc.RpcError] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for response in self.stream:
                self.items.put(response.idle)
        except grpc.RpcError as err:
            self.items.put(err)

    def until(
        self, want: Callable[[types_pb2.Idle], bool], timeout: float, what: str
    ) -> types_pb2.Idle:
        """The first settle matching ``want``; AssertionError if the stream ends first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.items.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the race delivered no {what} within {timeout}s") from None
            if isinstance(item, grpc.RpcError):
                status = f"{item.code()} {item.details()}"
                raise AssertionError(f"the race ended while waiting for {what}: {status}")
            if want(item):
                return item

    def close(self) -> None:
        self.stream.cancel()
        self.thread.join(10)
        if self.thread.is_alive():
            raise RuntimeError("the race reader did not end after cancel")


@dataclass
class HealthSampler:
    """ListServers every ``interval`` on a thread: far's and near's health over time."""

    cluster: FaultCluster
    interval: float = 0.1
    # (monotonic time, far health, near health, far heartbeat latency ms)
    samples: list[tuple[float, int, int, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HealthSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                servers = self.cluster.healths()
                far, near = servers["far"], servers["near"]
                self.samples.append((time.monotonic(), far.health, near.health, far.latency_ms))
            except grpc.RpcError as err:
                self.errors.append(f"ListServers: {err.code()}")
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(15)

    def not_healthy(self) -> list[tuple[float, int, int]]:
        """Samples in which far or near was anything but HEALTHY."""
        healthy = hub_pb2.SERVER_HEALTH_HEALTHY
        return [(t, f, n) for t, f, n, _ in self.samples if f != healthy or n != healthy]

    @property
    def max_latency_ms(self) -> float:
        return max((latency for *_, latency in self.samples), default=0.0)
