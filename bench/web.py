"""Web view: keystroke to echo on screen in the browser terminal, measured in
the page, against the same keystroke through ``wsh attach``.

browser: Debian's headless Chromium on ``wsh web`` (gRPC-Web bridge) to a hub,
         the terminal open on a session of a backend running ``cat`` (the
         kernel echoes each key). The page stamps each key's keydown and the
         moment a MutationObserver on xterm.js's DOM renderer sees the last
         non-blank row become the line typed so far (the echo drawn, its
         animation frame included), both with performance.now(); and, for
         reference, when xterm.js has parsed the echo into its buffer (the
         page's data-parsed counter), before the frame that draws it. The page
         sends the key with SendInput (gRPC-Web cannot stream from the
         browser) and gets the echo on its Attach stream.
attach:  ``wsh attach`` in a PTY of its own, on the same session: a key
         written to the PTY until its letter comes back from wsh attach.
sdk:     for reference, the agent loop through the hub from Python:
         SendInput, then AwaitIdle(last_generation, timeout_ms=5) until the
         key shows.

Keys are typed in lines of 20 random letters, each line ended by Enter.
Target: browser median at most 2x wsh attach's.
"""

from __future__ import annotations

import os
import pty
import random
import select
import signal
import string
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import _harness as h
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.web.browser import browser_errors, chromium, wait_for
from tests.web.webproc import WebProc
from wsh.client import Client
from wsh.v1 import hub_pb2

KEYS = 200
QUICK_KEYS = 20
LINE = 20
TARGET_RATIO = 2.0
KEY_WAIT_S = 10.0
RUN_S = 600.0
SESSION = "typing"
SERVER = "backend"

# Installed once in the page: stamps keydown, resolves when the terminal's
# last non-blank row is the line typed so far (cat has no prompt, and before
# the key that row held one letter less, or the previous, longer line).
OBSERVER = """
const box = document.querySelector('#terminal');
const rows = box.querySelector('.xterm-rows');
const area = box.querySelector('textarea');
const lastLine = () => {
  const texts = [...rows.children].map((r) => r.textContent.trim()).filter((t) => t);
  return texts.length ? texts[texts.length - 1] : '';
};
window.__bench = { samples: [], parsedSamples: [], pending: null, parsed: null, expect: null };
area.addEventListener('keydown', () => {
  const b = window.__bench;
  if (b.expect) { b.pending = performance.now(); b.parsed = null; }
}, true);
// The page marks each write xterm.js has parsed (data-parsed): the echo is
// in the terminal's buffer, to be drawn on the next animation frame.
new MutationObserver(() => {
  const b = window.__bench;
  if (b.pending !== null && b.parsed === null) b.parsed = performance.now();
}).observe(box, { attributes: true, attributeFilter: ['data-parsed'] });
new MutationObserver(() => {
  const b = window.__bench;
  if (b.pending === null || lastLine() !== b.expect) return;
  const now = performance.now();
  b.samples.push(now - b.pending);
  b.parsedSamples.push((b.parsed ?? now) - b.pending);
  b.pending = null;
  b.expect = null;
}).observe(rows, { subtree: true, childList: true, characterData: true });
"""


def browser_samples(driver: WebDriver, keys: list[str]) -> tuple[list[int], list[int]]:
    """Keydown to the echo drawn, and keydown to the echo parsed by xterm.js."""
    area = driver.find_element(By.CSS_SELECTOR, "#terminal textarea")
    typed = ""
    for key in (keys[i] for i in h.bounded(len(keys), RUN_S)):
        if key == "\n":
            area.send_keys("\n")
            typed = ""
            time.sleep(0.05)
            continue
        typed += key
        driver.execute_script("window.__bench.expect = arguments[0];", typed)
        before = driver.execute_script("return window.__bench.samples.length")
        area.send_keys(key)
        wait_for(
            lambda n=before: driver.execute_script("return window.__bench.samples.length") > n,
            KEY_WAIT_S,
            what=f"echo of {typed!r}",
        )
    drawn = driver.execute_script("return window.__bench.samples")
    parsed = driver.execute_script("return window.__bench.parsedSamples")
    return [int(ms * 1e6) for ms in drawn], [int(ms * 1e6) for ms in parsed]


def sdk_samples(client: Client, keys: list[str]) -> list[int]:
    samples: list[int] = []
    typed = ""
    for key in (keys[i] for i in h.bounded(len(keys), RUN_S)):
        if key == "\n":
            client.send_input(SESSION, "\n", server=SERVER)
            typed = ""
            time.sleep(0.05)
            continue
        typed += key
        start = h.now_ns()
        generation = client.send_input(SESSION, key, server=SERVER).generation
        deadline = time.monotonic() + KEY_WAIT_S
        while True:
            idle = client.await_idle(
                SESSION, server=SERVER, timeout_ms=5, last_generation=generation
            )
            if _last_line(idle.screen.lines) == typed:
                break
            generation = idle.generation
            if time.monotonic() > deadline:
                raise TimeoutError(f"no echo of {typed!r}")
        samples.append(h.now_ns() - start)
    return samples


def attach_samples(hub_addr: str, keys: list[str]) -> list[int]:
    """``wsh attach`` in a PTY of its own: write each key to the PTY and read
    until the letter comes back (the session's cat echoes it)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: wsh attach on this PTY
        argv = [sys.executable, "-m", "wsh", "--addr", hub_addr, "attach", SESSION]
        os.execvp(argv[0], [*argv, "--server", SERVER])
    try:
        _drain(fd, 1.0)  # the repaint
        samples: list[int] = []
        for key in (keys[i] for i in h.bounded(len(keys), RUN_S)):
            start = h.now_ns()
            os.write(fd, key.encode() if key != "\n" else b"\r")
            if key == "\n":
                _drain(fd, 0.05)
                continue
            seen = b""
            deadline = time.monotonic() + KEY_WAIT_S
            while key.encode() not in seen:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise TimeoutError(f"wsh attach: no echo of {key!r}")
                seen += os.read(fd, 4096)
            samples.append(h.now_ns() - start)
        return samples
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)


def _drain(fd: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            os.read(fd, 65536)


def _last_line(lines: Sequence[str]) -> str:
    """The last non-blank row: where cat's echo of the typed line is."""
    texts = [line.strip() for line in lines if line.strip()]
    return texts[-1] if texts else ""


def key_stream(count: int) -> list[str]:
    rng = random.Random(14)
    keys: list[str] = []
    while sum(k != "\n" for k in keys) < count:
        keys += [rng.choice(string.ascii_lowercase) for _ in range(LINE)] + ["\n"]
    letters = 0
    out: list[str] = []
    for key in keys:
        if key != "\n":
            if letters == count:
                break
            letters += 1
        out.append(key)
    return out


def main() -> None:
    args = h.parse_args(__doc__ or "")
    keys = key_stream(QUICK_KEYS if args.quick else KEYS)
    with h.bench_run("web") as (stack, scratch):
        backend = h.start_server(stack, scratch, SERVER)
        hub_proc = h.start_server(stack, scratch, "hub")
        hub = h.connect(stack, hub_proc.addr)
        h.add_backends(hub, [backend])
        hub.CreateSession(
            hub_pb2.CreateSessionRequest(
                server=SERVER, name=SESSION, command="cat", rows=h.ROWS, cols=h.COLS
            ),
            timeout=h.RPC_TIMEOUT,
        )
        web = stack.enter_context(WebProc(hub_proc.addr, env={"WSH_TOKEN": ""}))
        driver = chromium(Path(scratch) / "profile")
        stack.callback(driver.quit)
        driver.get(web.url)
        wait_for(
            lambda: driver.find_elements(
                By.CSS_SELECTOR, f'tr[data-session="{SERVER}/{SESSION}"] [data-action="open"]'
            ),
            what="the session listed",
        )[0].click()
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#terminal textarea"), what="xterm")
        # Let the first screen and the fit-to-window resize land before timing.
        time.sleep(1.0)
        driver.execute_script(OBSERVER)
        drawn, parsed = browser_samples(driver, keys)
        page, in_buffer = h.Stats.of(drawn), h.Stats.of(parsed)
        errors = browser_errors(driver)
        client = Client(hub_proc.addr, token="")
        stack.callback(client.close)
        sdk = h.Stats.of(sdk_samples(client, keys))
        attach = h.Stats.of(attach_samples(hub_proc.addr, keys))
    print(
        f"keys: {page.n} in the browser, {attach.n} through wsh attach, {sdk.n} through the "
        f"SDK; console errors: {len(errors)}"
    )
    h.print_table(
        "web: keystroke to echo on screen (a backend's session, through the hub)",
        [
            h.ratio_row("median", page.median, attach.median, "ms", TARGET_RATIO),
            h.ratio_row("p99", page.p99, attach.p99, "ms", None),
            h.ratio_row("max", page.max, attach.max, "ms", None),
        ],
        peer_name="attach",
        wsh_name="browser",
    )
    h.print_table(
        "for reference: the echo in xterm.js's buffer, before it is drawn",
        [
            h.ratio_row("median", in_buffer.median, attach.median, "ms", None),
            h.ratio_row("p99", in_buffer.p99, attach.p99, "ms", None),
        ],
        peer_name="attach",
        wsh_name="parsed",
    )
    h.print_table(
        "for reference: SendInput + AwaitIdle(5 ms) through the SDK",
        [
            h.ratio_row("median", page.median, sdk.median, "ms", None),
            h.ratio_row("p99", page.p99, sdk.p99, "ms", None),
        ],
        peer_name="sdk",
        wsh_name="browser",
    )


if __name__ == "__main__":
    main()
