"""``wsh attach``: this terminal shows a session live and types into it.

The local terminal goes to raw mode (when standard input is one), keystrokes
go to the session as they come, the window size follows SIGWINCH, and the
output is written as the server sends it, starting with a repaint of the
screen. The detach key ends it; so do the session's exit (its exit code is
the command's exit status), an error, SIGTERM or SIGHUP. Every one of these
puts the terminal back as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Iterator

from wsh.cli.output import Output, Quiet, UsageError
from wsh.client import AsyncAttachment, AsyncClient, Client

DEFAULT_DETACH_KEY = "ctrl-\\"
# What the session may have left set on this terminal, undone at the end:
# the primary screen, a soft reset (pen, cursor keys, scroll region, shown
# cursor; it turns autowrap off, hence ?7h), no bracketed paste, no mouse.
_RESTORE = (
    b"\x1b[?1049l\x1b[!p\x1b[?7h\x1b[?25h\x1b[?2004l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l"
)
_READ_BYTES = 64 * 1024


def detach_key(spec: str) -> bytes | None:
    """``ctrl-X`` or ``^X`` as its control byte; ``none``: no detach key."""
    text = spec.strip()
    if text.lower() == "none":
        return None
    for prefix in ("ctrl-", "c-", "^"):
        if text.lower().startswith(prefix) and len(text) == len(prefix) + 1:
            char = text[-1].upper()
            if "@" <= char <= "_" or char == "?":
                return bytes([0x7F if char == "?" else ord(char) - 0x40])
    raise UsageError(
        f"cannot read detach key {spec!r}: use ctrl-X or ^X (X one of A-Z @ [ \\ ] ^ _ ?) or none"
    )


def key_name(key: bytes | None) -> str:
    if key is None:
        return "none"
    return "Ctrl-?" if key == b"\x7f" else f"Ctrl-{chr(key[0] + 0x40)}"


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """``fd``'s terminal in raw mode, restored on the way out whatever happens."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return size.lines, size.columns


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def attach(client: Client, args: argparse.Namespace, out: Output) -> None:
    """Attach this terminal to a session until detached, exited or stopped."""
    key = detach_key(args.detach_key)
    status = asyncio.run(_attach(client, args, key))
    if status:
        raise Quiet(status)


async def _attach(client: Client, args: argparse.Namespace, key: bytes | None) -> int:
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    rows, cols = _size(stdout) if not args.read_only else (0, 0)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stopped: list[int] = []

    def stop(signum: int) -> None:
        stopped.append(signum)
        main.cancel()

    hint = f"wsh: attached to {args.name}; detach with {key_name(key)}\r\n"
    # Scrolled up out of the way of the repaint, so it stays in the
    # terminal's history.
    hint += "\n" * _size(stdout)[0]
    async with (
        AsyncClient(
            client.addr,
            token=args.token,
            ca_file=args.ca_file,
            client_cert=args.client_cert,
            client_key=args.client_key,
            timeout=args.deadline_s,
        ) as aclient,
        aclient.attach(
            args.name, server=args.server, read_only=args.read_only, rows=rows, cols=cols
        ) as attached,
    ):
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop, signum)
        try:
            with raw_terminal(stdin):
                try:
                    await _pump(attached, stdin, stdout, key, args.read_only, hint.encode())
                finally:
                    _write(stdout, _RESTORE)
        except asyncio.CancelledError:
            if not stopped:
                raise
        finally:
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
    if stopped:
        _write(stdout, f"\r\n[wsh: {signal.Signals(stopped[0]).name}, detached]\r\n".encode())
        return 128 + stopped[0]
    if attached.exit_code is None:
        _write(stdout, f"\r\n[wsh: detached from {args.name}]\r\n".encode())
        return 0
    code = attached.exit_code
    _write(stdout, f"\r\n[wsh: {args.name} exited with code {code}]\r\n".encode())
    return code if code >= 0 else 128 - code


async def _pump(
    attached: AsyncAttachment,
    stdin: int,
    stdout: int,
    key: bytes | None,
    read_only: bool,
    hint: bytes,
) -> None:
    """Keys and window sizes to the session, its output to ``stdout`` (after
    ``hint``, once attached), until the stream ends (the detach key ends it)."""
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[bytes | None] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(stdin, _READ_BYTES)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)  # end of input: watch on
            return
        keys.put_nowait(data)

    def resized() -> None:
        keys.put_nowait(None)

    async def send() -> None:
        while True:
            data = await keys.get()
            if data is None:
                await attached.resize(*_size(stdout))
                continue
            if key is not None and key in data:
                before = data[: data.index(key)]
                if before and not read_only:
                    await attached.send(before)
                await attached.detach()
                return
            if not read_only:
                await attached.send(data)

    loop.add_reader(stdin, readable)
    if not read_only:
        loop.add_signal_handler(signal.SIGWINCH, resized)
    sender = asyncio.create_task(send(), name="attach-keys")
    try:
        async for chunk in attached:
            _write(stdout, hint + chunk)
            hint = b""
    finally:
        loop.remove_reader(stdin)
        if not read_only:
            loop.remove_signal_handler(signal.SIGWINCH)
        sender.cancel()
        await asyncio.wait([sender])
        if not sender.cancelled():
            # Taken, not raised: a write failing means the stream failed,
            # and the iteration above raised the stream's own error.
            sender.exception()
