"""Shared plumbing for the benchmarks: wsh servers, private tmux servers,
bounded loops, timing statistics and the result table.

Every benchmark runs ``python bench/<name>.py`` from the repository, so this
module is imported as a sibling (``import _harness``); it puts the repository
root on ``sys.path`` so that ``tests.procs`` can start real servers the same
way the end-to-end tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import platform
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from tests.procs import ServerProc  # noqa: E402
from wsh.defaults import SCROLLBACK_LINES  # noqa: E402
from wsh.v1 import hub_pb2, hub_pb2_grpc  # noqa: E402

T = TypeVar("T")

# The same shell, prompt and size on both sides, so neither pays for a
# heavier prompt or a bigger screen than the other.
SHELL = "bash --norc --noprofile"
PROMPT_ENV = {"PS1": "$ "}
PROMPT_LINE = "$"  # "$ " with the trailing blank trimmed, as both report it
ROWS, COLS = 24, 80
RPC_TIMEOUT = 30.0
PROMPT_POLL_S = 0.002  # how often a new shell's screen is looked at, on both sides

HubStub = hub_pb2_grpc.HubServiceStub


def now_ns() -> int:
    """The benchmark clock: monotonic, in nanoseconds."""
    return time.perf_counter_ns()


def ms(ns: float) -> float:
    """Nanoseconds to milliseconds."""
    return ns / 1e6


def bounded(count: int, seconds: float) -> Iterator[int]:
    """Yield 0..count-1, stopping early once ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    for i in range(count):
        if time.monotonic() > deadline:
            return
        yield i


def poll_until(
    probe: Callable[[], T | None], timeout: float, interval: float = 0.0, what: str = ""
) -> T:
    """Call ``probe`` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what or probe}")
        if interval:
            time.sleep(interval)


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of latency samples, in milliseconds."""

    n: int
    median: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Stats:
        if not samples_ns:
            raise ValueError("no samples")
        ordered = sorted(samples_ns)
        # Nearest-rank p99: a value that was actually observed.
        p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
        return cls(len(ordered), ms(statistics.median(ordered)), ms(p99), ms(ordered[-1]))


# -- the result table ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a result table. ``ok`` None marks a reference figure."""

    metric: str
    wsh: float
    peer: float | None
    unit: str
    target: str
    ok: bool | None


def ratio_row(metric: str, wsh: float, peer: float, unit: str, max_ratio: float | None) -> Row:
    """wsh against a peer, judged on wsh/peer (lower is better) when a limit is given."""
    if max_ratio is None:
        return Row(metric, wsh, peer, unit, "ref", None)
    return Row(metric, wsh, peer, unit, f"<= {max_ratio:g}x", wsh <= max_ratio * peer)


def rate_row(metric: str, wsh: float, peer: float, unit: str, min_ratio: float | None) -> Row:
    """A throughput against a peer's, judged on wsh/peer (higher is better)."""
    if min_ratio is None:
        return Row(metric, wsh, peer, unit, "ref", None)
    return Row(metric, wsh, peer, unit, f">= {min_ratio:g}x", wsh >= min_ratio * peer)


def limit_row(
    metric: str, wsh: float, unit: str, limit: float | None, peer: float | None = None
) -> Row:
    """wsh against an absolute ceiling (a peer's figure only shown), or a
    reference figure when ``limit`` is None."""
    if limit is None:
        return Row(metric, wsh, peer, unit, "ref", None)
    return Row(metric, wsh, peer, unit, f"< {limit:g} {unit}", wsh < limit)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def print_table(
    title: str, rows: Sequence[Row], peer_name: str = "peer", wsh_name: str = "wsh"
) -> None:
    header = ("metric", wsh_name, peer_name, f"{wsh_name}/{peer_name}", "target", "result")
    cells = [header]
    for row in rows:
        ratio = f"{row.wsh / row.peer:.2f}x" if row.peer else "-"
        verdict = "ref" if row.ok is None else ("PASS" if row.ok else "MISS")
        cells.append(
            (
                row.metric,
                _fmt(row.wsh, row.unit),
                _fmt(row.peer, row.unit),
                ratio,
                row.target,
                verdict,
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, line in enumerate(cells):
        print(
            "  ".join(
                cell.ljust(w) if col == 0 else cell.rjust(w)
                for col, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


# -- run setup ----------------------------------------------------------------


def parse_args(description: str) -> argparse.Namespace:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (seconds)")
    return parser.parse_args()


def machine_summary() -> str:
    """Date, machine, versions, load and code under test, on one line."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    tmux = subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False)
    # The code measured: the commit, and whether the working tree differs from it.
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "wsh"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    # Other work on the machine skews every figure here, so it goes on record.
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; nproc {os.cpu_count()}; "
        f"{cpu}; Python {platform.python_version()}; grpcio {grpc.__version__}; "
        f"{tmux.stdout.strip()}; load average {load}; "
        f"wsh at {head or 'unknown commit'}{' + uncommitted changes' if dirty else ''}"
    )


@contextlib.contextmanager
def bench_run(name: str) -> Iterator[tuple[contextlib.ExitStack, Path]]:
    """An exit stack for every process a benchmark starts, and a scratch directory.

    SIGTERM is turned into an exception so the stack also unwinds when the run
    is stopped from outside; on failure the server logs are shown, as they are
    the only trace of what went wrong inside a server.
    """
    print(f"{name}: {machine_summary()}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"wsh-bench-{name}-"))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with contextlib.ExitStack() as stack:
            try:
                yield stack, scratch
            except BaseException:
                for log in sorted(scratch.glob("*.log")):
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    print(f"--- {log.name} (last lines)", *tail, sep="\n", file=sys.stderr)
                raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(scratch, ignore_errors=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- wsh ----------------------------------------------------------------------


def start_server(
    stack: contextlib.ExitStack, scratch: Path, hostname: str, listen: str = "127.0.0.1:0"
) -> ServerProc:
    """A ``wsh server`` with its own config file, stopped when ``stack`` unwinds.

    A scratch config keeps AddServer's write-back away from the user's config.
    """
    proc = ServerProc(
        hostname,
        "--config",
        str(scratch / f"{hostname}.toml"),
        listen=listen,
        log_path=scratch / f"{hostname}.log",
    )
    stack.callback(stop_server, proc)
    return proc.start()


def stop_server(proc: ServerProc) -> None:
    """Stop a server if it still runs; a killed one just needs reaping."""
    if proc.proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.stop()


def connect(stack: contextlib.ExitStack, addr: str) -> HubStub:
    """A HubService client whose channel closes when ``stack`` unwinds."""
    channel = grpc.insecure_channel(addr)
    stack.callback(channel.close)
    return hub_pb2_grpc.HubServiceStub(channel)


def add_backends(hub: HubStub, backends: Sequence[ServerProc]) -> None:
    """Register each backend with the hub and wait until it is healthy."""
    for backend in backends:
        added = hub.AddServer(
            hub_pb2.AddServerRequest(address=backend.url, wait=True), timeout=RPC_TIMEOUT
        ).server
        if added.health != hub_pb2.SERVER_HEALTH_HEALTHY:
            raise RuntimeError(f"backend {backend.hostname} did not become healthy: {added}")


def create_shell(hub: HubStub, name: str, server: str = "", **kw: object) -> None:
    """A bash session with the benchmark prompt, once its prompt is on screen."""
    hub.CreateSession(
        hub_pb2.CreateSessionRequest(
            server=server,
            name=name,
            command=SHELL,
            rows=ROWS,
            cols=COLS,
            env=PROMPT_ENV,
            **kw,  # type: ignore[arg-type]
        ),
        timeout=RPC_TIMEOUT,
    )
    wait_screen(hub, name, PROMPT_LINE, server=server)


def send_await(
    hub: HubStub,
    name: str,
    data: bytes,
    line: str,
    timeout_ms: int,
    wait_s: float,
    server: str = "",
) -> int:
    """The agent loop: SendInput, then AwaitIdle from its generation until ``line``
    is on the idle screen. Returns how many AwaitIdle calls that took."""
    generation = hub.SendInput(
        hub_pb2.SendInputRequest(server=server, name=name, data=data), timeout=RPC_TIMEOUT
    ).generation
    for calls in bounded(1_000_000, wait_s):
        idle = hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(
                server=server,
                name=name,
                timeout_ms=timeout_ms,
                last_generation=generation,
                max_wait_ms=int(wait_s * 1000),
            ),
            timeout=wait_s + RPC_TIMEOUT,
        ).idle
        if line in idle.screen.lines:
            return calls + 1
        # Settled before the line came (a pause in the output): wait for more.
        generation = idle.generation
    raise TimeoutError(f"{line!r} never showed on {name} within {wait_s:.0f}s")


def send_poll(
    hub: HubStub,
    name: str,
    data: bytes,
    line: str,
    interval: float,
    wait_s: float,
    server: str = "",
) -> None:
    """SendInput, then GetScreen every ``interval`` seconds until ``line`` shows."""
    hub.SendInput(
        hub_pb2.SendInputRequest(server=server, name=name, data=data), timeout=RPC_TIMEOUT
    )
    poll_until(
        lambda: True if line in screen_lines(hub, name, server) else None,
        wait_s,
        interval,
        f"{line!r} on {name}",
    )


def screen_lines(hub: HubStub, name: str, server: str = "") -> Sequence[str]:
    """The visible lines of a session, trailing blanks trimmed."""
    request = hub_pb2.GetScreenRequest(server=server, name=name)
    return hub.GetScreen(request, timeout=RPC_TIMEOUT).screen.lines  # type: ignore[no-any-return]


def wait_screen(
    hub: HubStub, name: str, line: str, server: str = "", timeout: float = 30.0
) -> None:
    """Poll GetScreen until ``line`` is one of the visible lines."""
    poll_until(
        lambda: True if line in screen_lines(hub, name, server) else None,
        timeout,
        PROMPT_POLL_S,
        f"{line!r} on {name}",
    )


# -- tmux ---------------------------------------------------------------------


class Tmux:
    """A private tmux server (``tmux -L``), driven through its CLI."""

    def __init__(self, name: str, scratch: Path) -> None:
        self.socket = f"wsh-bench-{name}-{os.getpid()}"
        self.config = scratch / f"{self.socket}.conf"
        # wsh runs a command as ``/bin/sh -c``; tmux would use $SHELL, and a
        # non-interactive bash there drops PS1 from the environment.
        # The same scrollback as a wsh session keeps (tmux's default is 2000).
        self.config.write_text(
            f"set-option -g default-shell /bin/sh\nset-option -g history-limit {SCROLLBACK_LINES}\n"
        )
        self._started = False
        self.env = {**os.environ, **PROMPT_ENV}

    def argv(self, *args: str) -> list[str]:
        """The command line of one tmux client on this server."""
        return ["tmux", "-L", self.socket, "-f", str(self.config), *args]

    def __call__(self, *args: str) -> str:
        """One tmux command as its own process, like a script would run it."""
        done = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=RPC_TIMEOUT,
            check=False,
            env=self.env,
        )
        if done.returncode:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def new_session(self, name: str, command: str = SHELL) -> None:
        """A detached 80x24 session; the first one starts the server."""
        self._started = True
        self("new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), command)

    def start_shell(self, name: str) -> None:
        """A new session, once its prompt is on screen."""
        self.new_session(name)
        poll_until(
            lambda: True if PROMPT_LINE in self.screen(name) else None,
            30.0,
            PROMPT_POLL_S,
            f"tmux prompt on {name}",
        )

    def screen(self, target: str) -> list[str]:
        """The visible lines of a pane, as ``capture-pane -p`` prints them."""
        return self("capture-pane", "-p", "-t", target).splitlines()

    def type_line(self, target: str, text: str) -> None:
        """Type ``text`` and Enter."""
        # -l keeps words such as "Enter" in ``text`` literal; one process sends both.
        self("send-keys", "-t", target, "-l", text, ";", "send-keys", "-t", target, "Enter")

    def send_poll(self, target: str, text: str, line: str, interval: float, wait_s: float) -> None:
        """Type ``text`` and Enter, then capture the pane every ``interval``
        seconds until ``line`` shows."""
        self.type_line(target, text)
        poll_until(
            lambda: True if line in self.screen(target) else None,
            wait_s,
            interval,
            f"{line!r} on tmux {target}",
        )

    def kill_server(self) -> None:
        """Stop the server and every session on it."""
        if self._started:
            subprocess.run(
                self.argv("kill-server"), capture_output=True, check=False, timeout=10, env=self.env
            )
            # tmux 3.3 leaves the socket file of a killed server behind.
            tmpdir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
            (tmpdir / self.socket).unlink(missing_ok=True)


def start_tmux(stack: contextlib.ExitStack, scratch: Path, name: str) -> Tmux:
    """A private tmux server, killed when ``stack`` unwinds."""
    tmux = Tmux(name, scratch)
    stack.callback(tmux.kill_server)
    return tmux


class TmuxControl:
    """One ``tmux -C`` control-mode client: commands over a single pipe, no forks.

    Each command's reply arrives as a ``%begin``/``%end`` (or ``%error``)
    block whose flags are 1 for commands sent by this client; the reply to
    the attach itself (flags 0) and notifications between blocks are skipped.
    """

    def __init__(self, tmux: Tmux, target: str, output: bool = False) -> None:
        """``output``: keep the pane output notifications, in ``self.output``
        (as tmux escapes them: octal for control characters and backslash)."""
        self.output = bytearray()
        self._proc = subprocess.Popen(
            tmux.argv("-C", "attach-session", "-t", target),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=tmux.env,
        )
        assert self._proc.stdout is not None
        self._out = self._proc.stdout.fileno()
        self._buf = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ)
        # Commands that arrive before the client has its session fail with
        # "no current client"; the session-changed notification marks that point.
        deadline = time.monotonic() + RPC_TIMEOUT
        while not self._line(deadline).startswith(b"%session-changed "):
            pass
        if not output:
            # Pane output notifications would only be parsed and dropped.
            self.command("refresh-client -f no-output")

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self._buf:
            if not self._selector.select(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("tmux control client did not answer")
            chunk = os.read(self._out, 65536)
            if not chunk:
                raise RuntimeError("tmux control client exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        if line.startswith(b"%output "):
            self.output += line.split(b" ", 2)[2]
        return line

    def wait_output(self, wanted: Sequence[bytes], timeout: float = RPC_TIMEOUT) -> None:
        """Read notifications until one of ``wanted`` (escaped as tmux does)
        is in the output kept since the last call; then forget that output."""
        deadline = time.monotonic() + timeout
        while not any(one in self.output for one in wanted):
            self._line(deadline)
        self.output.clear()

    def command(self, command: str, timeout: float = RPC_TIMEOUT) -> list[str]:
        """Run one command; returns its output lines or raises on ``%error``."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")
        self._proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline)
            if line.startswith(b"%begin ") and line.endswith(b" 1"):
                break
        lines: list[str] = []
        while True:
            line = self._line(deadline)
            if line.startswith((b"%end ", b"%error ")):
                if line.startswith(b"%error "):
                    raise RuntimeError(f"tmux {command}: {' '.join(lines)}")
                return lines
            lines.append(line.decode(errors="replace"))

    def close(self) -> None:
        """Detach the client and reap it."""
        self._selector.close()
        with contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        assert self._proc.stdout is not None
        self._proc.stdout.close()


def attach_control(
    stack: contextlib.ExitStack, tmux: Tmux, target: str, output: bool = False
) -> TmuxControl:
    """A control client, closed when ``stack`` unwinds (``output``: see TmuxControl)."""
    control = TmuxControl(tmux, target, output)
    stack.callback(control.close)
    return control
