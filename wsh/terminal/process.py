"""One process on a pseudo-terminal: spawn, read, write, resize, terminate, reap.

Everything here is event-driven on the running asyncio loop: output arrives
through ``loop.add_reader`` on the PTY master, exit through a pidfd, and input
that the PTY cannot take at once waits for ``add_writer``. Nothing blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import select
import shutil
import signal
import struct
import termios
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from wsh.errors import Kind, WshError
from wsh.terminal import foreground
from wsh.terminal.foreground import Foreground, Readiness

# A bounded read per callback keeps one flooding session from holding the loop
# for long; the loop goes round every other ready callback between reads.
READ_CHUNK = 64 * 1024
# Input the program has not read yet. Past this a sender gets RESOURCE_EXHAUSTED
# instead of the server buffering without limit.
MAX_PENDING_INPUT = 8 * 1024 * 1024
# How long each of SIGHUP and SIGTERM gets before the next, stronger signal.
TERMINATE_GRACE_S = 0.5
_ENV = shutil.which("env") or "/usr/bin/env"


@dataclass(frozen=True, slots=True)
class SpawnSpec:
    """What to run and how."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    rows: int
    cols: int


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(events & select.POLLIN for _fd, events in poller.poll(0))


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyProcess:
    """A child process whose controlling terminal is a fresh PTY.

    ``on_output(data)`` is called on the loop for every chunk the program
    writes; ``on_exit(code)`` once, after the exit status is reaped and the
    remaining output drained. ``code`` is the exit status, or minus the signal
    number that killed it.
    """

    def __init__(
        self,
        spec: SpawnSpec,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_output = on_output
        self._on_exit = on_exit
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._writing = False
        self.exit_code: int | None = None
        self._exited = asyncio.Event()
        self._closed = False
        self._reading = True  # the PTY master is watched for output
        self._eof = False  # no more output can come

        master, slave = os.openpty()
        try:
            os.set_blocking(master, False)
            _set_winsize(master, spec.rows, spec.cols)
            self._tty = os.ttyname(slave)
            self.pid = self._spawn(spec, self._tty)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._master = master
        # Holding the slave end keeps the master readable (no EIO) until the
        # process is reaped, even for a child that has not opened it yet; exit
        # is learned from the pidfd instead.
        self._slave = slave
        self._pidfd = os.pidfd_open(self.pid)
        self._loop.add_reader(self._master, self._read_ready)
        self._loop.add_reader(self._pidfd, self._exit_ready)

    @staticmethod
    def _spawn(spec: SpawnSpec, tty_path: str) -> int:
        # posix_spawn (vfork+exec) is safe in a process with threads, unlike
        # fork. setsid happens before the file actions, so opening the tty
        # as the new session leader makes it the controlling terminal, which
        # job control and SIGWINCH need.
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, tty_path, os.O_RDWR, 0),
            (os.POSIX_SPAWN_DUP2, 0, 1),
            (os.POSIX_SPAWN_DUP2, 0, 2),
        ]
        prog = spec.argv[0]
        # posix_spawn has no working-directory attribute in Python 3.11;
        # `env -C` changes it and execs the program in the same process.
        argv = [_ENV, "-C", spec.cwd, "--", *spec.argv]
        try:
            return os.posix_spawn(
                _ENV,
                argv,
                dict(spec.env),
                file_actions=actions,
                setsid=True,
                setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE),
                setsigmask=(),
            )
        except OSError as exc:
            raise WshError(
                Kind.FAILED_PRECONDITION,
                "SPAWN_FAILED",
                f"Cannot start {prog!r}: {exc.strerror}.",
            ) from exc

    # -- output ---------------------------------------------------------------

    def _read_ready(self) -> None:
        try:
            data = os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                # Every slave closed; nothing more can arrive.
                self._stop_reading()
                return
            raise
        if data:
            self._on_output(data)
        else:
            self._stop_reading()

    def _stop_reading(self) -> None:
        self._eof = True
        self.pause_reading()

    def pause_reading(self) -> None:
        """Stop taking output: the program blocks once the kernel's PTY buffer
        is full, until :meth:`resume_reading`."""
        if self._reading and not self._closed:
            self._reading = False
            self._loop.remove_reader(self._master)

    def resume_reading(self) -> None:
        if not self._reading and not self._closed and not self._eof:
            self._reading = True
            self._loop.add_reader(self._master, self._read_ready)

    def _drain_output(self) -> None:
        while not self._closed:
            try:
                data = os.read(self._master, READ_CHUNK)
            except OSError:
                return
            if not data:
                return
            self._on_output(data)

    # -- exit -----------------------------------------------------------------

    def _exit_ready(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self.exit_code = (
            -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
        )
        self._drain_output()
        self._exited.set()
        self._on_exit(self.exit_code)

    @property
    def running(self) -> bool:
        return self.exit_code is None

    # -- input ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the program, in order, without blocking."""
        if self._closed:
            raise WshError(Kind.FAILED_PRECONDITION, "SESSION_CLOSED", "The session is closed.")
        if self._pending_bytes + len(data) > MAX_PENDING_INPUT:
            raise WshError(
                Kind.RESOURCE_EXHAUSTED,
                "INPUT_BACKLOG_FULL",
                "The program is not reading its input; "
                f"{self._pending_bytes} bytes are still waiting.",
            )
        if not data:
            return
        self._pending.append(memoryview(data))
        self._pending_bytes += len(data)
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            chunk = self._pending[0]
            try:
                n = os.write(self._master, chunk)
            except BlockingIOError:
                n = 0
            except OSError:
                # The terminal is gone (process exited): drop what is left.
                self._pending.clear()
                self._pending_bytes = 0
                break
            self._pending_bytes -= n
            if n < len(chunk):
                self._pending[0] = chunk[n:]
                if not self._writing:
                    self._writing = True
                    self._loop.add_writer(self._master, self._flush)
                return
            self._pending.popleft()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._master)

    # -- foreground -----------------------------------------------------------

    def foreground(self, before: Foreground | None = None) -> Foreground:
        """What the terminal's foreground process group is doing, right now.

        READY only if, in this order: no input waits for the program (ours,
        or in the terminal: polling the slave end first moves input the
        kernel still holds in its flip buffer into the line discipline,
        which a FIONREAD does not — it missed 98.8% of fresh writes here);
        every process of the group waits for the terminal
        (:func:`foreground.inspect`); and none of the program's output is
        left unread (polling the master flushes its flip buffer likewise),
        so output written before the program blocked is on our side.
        ``before``, a BUSY answer given earlier, lets a re-check end early
        while the process found busy then is still busy
        (:func:`foreground.still_busy`).
        """
        if self._closed or self.exit_code is not None:
            return foreground.UNKNOWN
        try:
            pgrp = os.tcgetpgrp(self._master)
        except OSError:
            return foreground.UNKNOWN
        if before is not None and foreground.still_busy(before, pgrp):
            return before
        input_waits = bool(self._pending) or _readable(self._slave)
        state = foreground.inspect(self.pid, pgrp, self._tty)
        if state.ready and (input_waits or _readable(self._master)):
            return Foreground(Readiness.BUSY, state.name)
        return state

    # -- control --------------------------------------------------------------

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size; the kernel sends SIGWINCH to the foreground group."""
        if not self._closed:
            _set_winsize(self._master, rows, cols)

    def _signal_group(self, sig: int) -> None:
        # The pidfd is still open until reaped, so the pid cannot have been
        # reused by another process yet.
        if self.exit_code is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    async def terminate(self) -> None:
        """End the process group: SIGHUP, then SIGTERM, then SIGKILL; reap; close."""
        for sig in (signal.SIGHUP, signal.SIGTERM):
            if self.exit_code is not None:
                break
            self._signal_group(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited.wait(), TERMINATE_GRACE_S)
        if self.exit_code is None:
            self._signal_group(signal.SIGKILL)
            await self._exited.wait()
        # Members of the group that outlived the leader (background jobs that
        # ignore SIGHUP) get the same end.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Release the PTY and the pidfd. Only after the process is reaped."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._master)
        if self._writing:
            self._loop.remove_writer(self._master)
        self._pending.clear()
        os.close(self._master)
        os.close(self._slave)
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
