"""tmux as an independent terminal emulator: feed it bytes, read its screen back.

Each screen is a detached session of exactly the size asked for, on a private
server (``tmux -S <socket in a new temporary directory>``) that ``TmuxServer``
kills when it closes.
Its pane runs this file as a feeder: it puts the pane's terminal in raw mode
(so ``\\n`` reaches tmux as it is, not as ``\\r\\n``), writes the bytes, then
asks for a device status report (``ESC [ 5 n``). tmux answers on the pane's
input in order, after everything written before the request, so when the
answer arrives tmux has taken in all the bytes; the feeder then says so with
a file and sleeps until the server is killed (the pane must outlive the
capture). Should the test run itself be killed, the feeders end after
``LINGER`` seconds, and with them their sessions and the server.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

STATUS_REQUEST = b"\x1b[5n"
STATUS_REPORT = b"\x1b[0n"
# tmux takes in tens of KB in milliseconds; a busy 2-core machine is slower.
READY_TIMEOUT = 60.0
COMMAND_TIMEOUT = 30.0
LINGER = 600


@dataclass(frozen=True)
class TmuxScreen:
    rows: int
    cols: int
    lines: tuple[str, ...]
    """``capture-pane -p``: each row's text, trailing blanks trimmed."""
    sgr_lines: tuple[str, ...]
    """``capture-pane -p -e -N``: each row with SGR sequences and trailing blanks."""
    cursor: tuple[int, int]
    """Row and column, zero-based."""
    cursor_visible: bool
    alternate_screen: bool


class TmuxServer:
    """A private tmux server; screens are started together and read after."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wsh-tmux-")
        # A socket of its own (tmux does not remove it when killed): no other
        # server can be reached, and it goes with the directory.
        self._socket = str(Path(self._dir.name) / "socket")
        self._config = Path(self._dir.name) / "tmux.conf"
        # No status line: it would take a row from the pane.
        self._config.write_text("set -g status off\n")
        self._started: dict[str, tuple[int, int, Path]] = {}

    def __enter__(self) -> TmuxServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._started:
            subprocess.run(
                ["tmux", "-S", self._socket, "kill-server"],
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            self._started.clear()
        self._dir.cleanup()

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self._socket, "-f", str(self._config), *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, name: str, data: bytes, rows: int, cols: int) -> None:
        """Starts feeding ``data`` to a new ``rows`` x ``cols`` screen called ``name``."""
        work = Path(self._dir.name)
        source, ready = work / f"{name}.bin", work / f"{name}.ready"
        source.write_bytes(data)
        feeder = [sys.executable, str(Path(__file__).resolve()), str(source), str(ready)]
        # Registered before starting, so that close() kills a half-started server.
        self._started[name] = (rows, cols, ready)
        self.tmux(
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            str(cols),
            "-y",
            str(rows),
            shlex.join(feeder),
        )

    def screen(self, name: str) -> TmuxScreen:
        """The screen once tmux has taken in every byte."""
        rows, cols, ready = self._started[name]
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"tmux did not take in {name} within {READY_TIMEOUT} s")
            time.sleep(0.02)
        target = f"={name}:"
        fields = "#{pane_width} #{pane_height} #{cursor_y} #{cursor_x} #{cursor_flag}"
        fields += " #{alternate_on}"
        width, height, row, col, visible, alternate = map(
            int, self.tmux("display-message", "-p", "-t", target, fields).split()
        )
        # The size is checked, not assumed: a client or an option could change it.
        if (height, width) != (rows, cols):
            raise RuntimeError(f"tmux pane {name} is {height}x{width}, not {rows}x{cols}")
        plain = self.tmux("capture-pane", "-p", "-t", target)
        styled = self.tmux("capture-pane", "-p", "-e", "-N", "-t", target)
        return TmuxScreen(
            rows,
            cols,
            tuple(plain.split("\n")[:rows]),
            tuple(styled.split("\n")[:rows]),
            (row, col),
            bool(visible),
            bool(alternate),
        )


def feed(source: Path, ready: Path) -> None:
    """The pane's side: write the bytes, wait for tmux's answer, flag it."""
    data = source.read_bytes()
    tty.setraw(0)
    written = 0
    while written < len(data):
        written += os.write(1, data[written:])
    os.write(1, STATUS_REQUEST)
    # Replies to requests in the data itself come first; ours is the last.
    wanted = data.count(STATUS_REQUEST) + 1
    answers = b""
    while answers.count(STATUS_REPORT) < wanted:
        answers += os.read(0, 4096)
    ready.touch()
    time.sleep(LINGER)


if __name__ == "__main__":
    feed(Path(sys.argv[1]), Path(sys.argv[2]))
