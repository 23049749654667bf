"""A spinner on stderr while a call blocks, with the elapsed time and an optional status."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable
from typing import Self, TextIO


class Spinner:
    """A spinner with elapsed time on ``stream`` (stderr) while a call blocks.

    It only draws when the stream is a terminal, and erases itself on exit.
    ``status``, when given, is called from the spinner's thread every
    ``status_interval`` seconds and its answer shown after the message; it
    must not raise.
    """

    _FRAMES = "|/-\\"

    def __init__(
        self,
        message: str,
        stream: TextIO | None = None,
        interval: float = 0.1,
        *,
        status: Callable[[], str] | None = None,
        status_interval: float = 0.2,
    ) -> None:
        self._message = message
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._status = status
        self._status_interval = status_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        if self._stream.isatty():
            self._thread = threading.Thread(target=self._spin, name="wsh-spinner", daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        start = time.monotonic()
        detail = ""
        polled = -self._status_interval
        for frame in itertools.cycle(self._FRAMES):
            now = time.monotonic() - start
            if self._status is not None and now - polled >= self._status_interval:
                polled = now
                detail = self._status()
            line = f"{frame} {self._message} ({int(now)}s)" + (f": {detail}" if detail else "")
            # Erase to the end of the line: the status may have got shorter.
            self._stream.write(f"\r{line}\x1b[K")
            self._stream.flush()
            if self._stop.wait(self._interval):
                return

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._stream.write("\r\x1b[K")
        self._stream.flush()
