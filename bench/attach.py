"""Attach: echo latency, throughput with an attacher, and a stalled attacher.

echo: on an attached bash, send ``echo <token>`` on the stream and time until
  the token's own output line (CR LF, token, CR LF) arrives in the output:
  through the SDK's blocking ``attach()`` to a session of the server it talks
  to ("local") and to a session on a backend, through that hub ("hub");
  against tmux control mode (``tmux -C``: ``send-keys``, then its ``%output``
  notifications), in the same run, the three taking turns. Targets: local
  median at most 1.5x tmux control mode; hub median at most 2x local.
throughput: ``seq 1 1000000`` in a fresh bash, timed from the keystroke until
  "1000000" is on the screen (GetScreen every 10 ms, as bench/ingest.py),
  without and with an SDK client attached and reading; the client must get
  every byte (no resync). Target: with/without at most 1.1x (medians).
stalled: a client attaches to a session and reads nothing while ``yes``
  floods it for 30 s; meanwhile GetScreen on another session, back to back,
  and the server's RSS (GetServerInfo) before and at its peak; the same
  without an attacher is the peer figure (the flood's own scrollback and
  emulation take memory too). Targets: the attacher grows RSS by at most
  8 MiB ("a few") over the flood alone; GetScreen p99 under 20 ms.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid
from collections.abc import Callable

import _harness as h

from wsh.client import AsyncAttachment, AsyncClient, Attachment, Client
from wsh.v1 import hub_pb2

WAIT_S = 10.0
WARMUP_RUNS = 5
ECHO_LOCAL_RATIO = 1.5
ECHO_HUB_RATIO = 2.0
THROUGHPUT_RATIO = 1.1
RSS_GROWTH_MIB = 8.0
SCREEN_P99_MS = 20.0
POLL_S = 0.010
SEQ_COUNT = 1_000_000
MIB = 1024 * 1024
# The last line of seq.
SEQ_DONE = b"\n%d\r\n" % SEQ_COUNT


def echo_lines(token: str, cr: bytes = b"\r", lf: bytes = b"\n") -> tuple[bytes, bytes]:
    """The token's output line as it may come: after the typed line's CR LF,
    or after bash's CR once it turns bracketed paste off (ESC [?2004l CR);
    never the typed ``echo <token>`` itself. ``cr``, ``lf``: as the stream
    writes them."""
    line = token.encode() + cr + lf
    return cr + line, lf + line


class AttachProbe:
    """One attached bash, driven through the blocking SDK."""

    def __init__(self, client: Client, session: str, server: str = "") -> None:
        self.attached: Attachment = client.attach(session, server=server, timeout=3600)
        next(self.attached)  # the snapshot

    def __call__(self, token: str) -> int:
        after_cr, after_lf = echo_lines(token)
        seen = b""
        start = h.now_ns()
        self.attached.send(f"echo {token}\n")
        while after_cr not in seen and after_lf not in seen:
            seen = seen[-64:] + next(self.attached)
        return h.now_ns() - start


class AsyncAttachProbe:
    """One attached bash, driven through the asyncio SDK on a loop of its own,
    run in this thread for each probe (no thread hand-offs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, addr: str, session: str) -> None:
        self.loop = loop

        async def start() -> tuple[AsyncClient, AsyncAttachment]:
            client = AsyncClient(addr)
            attached = client.attach(session, timeout=3600)
            await anext(attached)  # the snapshot
            return client, attached

        self.client, self.attached = loop.run_until_complete(start())

    async def _probe(self, token: str) -> int:
        after_cr, after_lf = echo_lines(token)
        seen = b""
        start = h.now_ns()
        await self.attached.send(f"echo {token}\n")
        while after_cr not in seen and after_lf not in seen:
            seen = seen[-64:] + await anext(self.attached)
        return h.now_ns() - start

    def __call__(self, token: str) -> int:
        return self.loop.run_until_complete(self._probe(token))

    def close(self) -> None:
        self.attached.cancel()
        self.loop.run_until_complete(self.client.close())


def control_probe(control: h.TmuxControl, target: str) -> Callable[[str], int]:
    """send-keys, then %output notifications until the token's line."""

    def probe(token: str) -> int:
        start = h.now_ns()
        control.command(f"send-keys -t {target} 'echo {token}' Enter")
        control.wait_output(echo_lines(token, b"\\015", b"\\012"), WAIT_S)
        return h.now_ns() - start

    return probe


def echo(runs: int, budget_s: float) -> list[h.Row]:
    with h.bench_run("attach-echo") as (stack, scratch):
        backend = h.start_server(stack, scratch, "attbe")
        server = h.start_server(stack, scratch, "atthub")
        hub = h.connect(stack, server.addr)
        h.add_backends(hub, [backend])
        h.create_shell(hub, "local")
        h.create_shell(hub, "remote", server="attbe")
        client = Client(server.addr)
        stack.callback(client.close)
        tmux = h.start_tmux(stack, scratch, "attach")
        tmux.start_shell("ctl")
        control = h.attach_control(stack, tmux, "ctl", output=True)
        h.create_shell(hub, "local-aio")
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        aio = AsyncAttachProbe(loop, server.addr, "local-aio")
        stack.callback(aio.close)
        probes: dict[str, Callable[[str], int]] = {
            "local": AttachProbe(client, "local"),
            "local-aio": aio,
            "hub": AttachProbe(client, "remote", "attbe"),
            "control": control_probe(control, "ctl"),
        }
        names = list(probes)
        for name in names:
            for _ in range(WARMUP_RUNS):
                probes[name](uuid.uuid4().hex[:12])
        samples: dict[str, list[int]] = {name: [] for name in names}
        for run in h.bounded(runs, budget_s):
            shift = run % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(probes[name](uuid.uuid4().hex[:12]))
    stats = {name: h.Stats.of(s) for name, s in samples.items()}
    local, via_hub, ctl = stats["local"], stats["hub"], stats["control"]
    aio = stats["local-aio"]
    print(f"  echo runs: {local.n}")
    return [
        h.ratio_row("echo, local: median", local.median, ctl.median, "ms", ECHO_LOCAL_RATIO),
        h.ratio_row("echo, local: p99", local.p99, ctl.p99, "ms", None),
        h.ratio_row("echo, local, asyncio SDK: median", aio.median, ctl.median, "ms", None),
        h.ratio_row("echo, local, asyncio SDK: p99", aio.p99, ctl.p99, "ms", None),
        h.ratio_row(
            "echo, hub: median (peer: local)",
            via_hub.median,
            local.median,
            "ms",
            ECHO_HUB_RATIO,
        ),
        h.ratio_row("echo, hub: p99 (peer: local)", via_hub.p99, local.p99, "ms", None),
    ]


class Reader:
    """An attached client reading everything in a thread of its own."""

    def __init__(self, client: Client, session: str) -> None:
        self.attached = client.attach(session, timeout=3600)
        self.received = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def done(self) -> bool | None:
        """True once seq's last line came, or output was lost (a resync)."""
        return True if SEQ_DONE in self.received or self.attached.resyncs else None

    def _read(self) -> None:
        for chunk in self.attached:
            self.received += chunk

    def close(self) -> tuple[bytes, int]:
        self.attached.detach()
        self._thread.join(WAIT_S)
        return bytes(self.received), self.attached.resyncs


def throughput(runs: int) -> list[h.Row]:
    expected = b"".join(b"%d\r\n" % i for i in range(1, SEQ_COUNT + 1))
    times: dict[bool, list[int]] = {False: [], True: []}
    complete = resyncs = 0
    with h.bench_run("attach-throughput") as (stack, scratch):
        server = h.start_server(stack, scratch, "attput")
        hub = h.connect(stack, server.addr)
        client = Client(server.addr)
        stack.callback(client.close)
        for run in range(runs):
            for attached in (run % 2 == 0, run % 2 == 1):
                name = f"seq{run}{'a' if attached else 'n'}"
                h.create_shell(hub, name)
                reader = Reader(client, name) if attached else None
                start = h.now_ns()
                h.send_poll(hub, name, f"seq 1 {SEQ_COUNT}\n".encode(), str(SEQ_COUNT), POLL_S, 120)
                times[attached].append(h.now_ns() - start)
                if reader is not None:
                    # Every byte, once the prompt after the last line is in.
                    h.poll_until(reader.done, WAIT_S, POLL_S)
                    received, lost = reader.close()
                    complete += expected in received
                    resyncs += lost
                hub.KillSession(hub_pb2.KillSessionRequest(name=name), timeout=h.RPC_TIMEOUT)
                print(f"  run {run + 1}, attached={attached}: {times[attached][-1] / 1e9:.2f} s")
    without = h.Stats.of(times[False]).median / 1000
    with_reader = h.Stats.of(times[True]).median / 1000
    print(f"  attached clients that got every byte: {complete}/{runs}; resyncs {resyncs}")
    return [
        h.ratio_row(
            f"seq 1 {SEQ_COUNT}: ingest, attached (peer: not)",
            with_reader,
            without,
            "s",
            THROUGHPUT_RATIO,
        ),
        # "< 0.5": none.
        h.limit_row("attached clients missing a byte", runs - complete, "", 0.5),
    ]


def flood(seconds: float, stall: bool) -> tuple[float, h.Stats]:
    """``yes`` for ``seconds`` in one session, with a client attached to it
    that reads nothing (``stall``) or none; GetScreen on another session
    meanwhile. Returns the server's RSS growth (MiB) and the GetScreen times."""
    with h.bench_run(f"attach-flood-{'stalled' if stall else 'alone'}") as (stack, scratch):
        server = h.start_server(stack, scratch, "attflood")
        hub = h.connect(stack, server.addr)
        h.create_shell(hub, "flood")
        h.create_shell(hub, "other")
        info = hub_pb2.GetServerInfoRequest()
        rss_before = hub.GetServerInfo(info, timeout=h.RPC_TIMEOUT).stats.rss_bytes
        requests: queue.SimpleQueue[hub_pb2.AttachRequest | None] = queue.SimpleQueue()
        if stall:
            # The raw stub, whose responses nobody reads: nothing takes them
            # in the background.
            requests.put(hub_pb2.AttachRequest(start=hub_pb2.AttachStart(name="flood")))
            call = hub.Attach(iter(requests.get, None), timeout=seconds + 60)
            h.poll_until(
                lambda: hub.GetServerInfo(info, timeout=h.RPC_TIMEOUT).stats.attaches or None,
                WAIT_S,
                POLL_S,
            )
        hub.SendInput(hub_pb2.SendInputRequest(name="flood", data=b"yes\n"), timeout=10)
        samples: list[int] = []
        rss_peak = rss_before
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = h.now_ns()
            h.screen_lines(hub, "other")
            samples.append(h.now_ns() - start)
            if len(samples) % 100 == 0:
                rss = hub.GetServerInfo(info, timeout=h.RPC_TIMEOUT).stats.rss_bytes
                rss_peak = max(rss_peak, rss)
        rss_peak = max(rss_peak, hub.GetServerInfo(info, timeout=h.RPC_TIMEOUT).stats.rss_bytes)
        if stall:
            requests.put(None)
            call.cancel()
    screen = h.Stats.of(samples)
    print(
        f"  {'stalled attacher' if stall else 'no attacher'}: {screen.n} GetScreen calls, "
        f"median {screen.median:.2f} ms; RSS {rss_before / MIB:.1f} MiB before, "
        f"peak {rss_peak / MIB:.1f} MiB"
    )
    return (rss_peak - rss_before) / MIB, screen


def stalled(seconds: float) -> list[h.Row]:
    alone_growth, alone = flood(seconds, stall=False)
    growth, screen = flood(seconds, stall=True)
    return [
        h.limit_row(
            f"yes {seconds:.0f} s, stalled attacher: RSS growth", growth, "MiB", None, alone_growth
        ),
        h.limit_row(
            "  of it the attacher's (peer: none)",
            growth - alone_growth,
            "MiB",
            RSS_GROWTH_MIB,
        ),
        h.limit_row(
            "  GetScreen p99 on another session", screen.p99, "ms", SCREEN_P99_MS, alone.p99
        ),
    ]


def main() -> None:
    args = h.parse_args(__doc__ or "")
    if args.quick:
        runs, budget_s, put_runs, stall_s = 30, 20.0, 2, 5.0
    else:
        runs, budget_s, put_runs, stall_s = 500, 300.0, 6, 30.0
    rows = echo(runs, budget_s) + throughput(put_runs) + stalled(stall_s)
    h.print_table("attach", rows, "tmux -C / as named")


if __name__ == "__main__":
    main()
