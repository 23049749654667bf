"""An Attach stream over a raw blocking stub, every read bounded by a timeout."""

from __future__ import annotations

import queue
import threading
import time

import grpc

from wsh.terminal.screen import TerminalScreen
from wsh.v1 import hub_pb2, hub_pb2_grpc

_END = object()


class Attacher:
    """``Attach`` with a thread reading responses into a queue."""

    def __init__(
        self,
        hub: hub_pb2_grpc.HubServiceStub,
        name: str,
        server: str = "",
        *,
        read_only: bool = False,
        size: tuple[int, int] | None = None,
        timeout: float | None = 60.0,
        first: hub_pb2.AttachRequest | None = None,
        read: bool = True,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        start = hub_pb2.AttachStart(
            name=name,
            server=server,
            mode=hub_pb2.ATTACH_MODE_READ_ONLY if read_only else hub_pb2.ATTACH_MODE_READ_WRITE,
        )
        if size is not None:
            start.size.rows, start.size.cols = size
        self._requests: queue.Queue[hub_pb2.AttachRequest | None] = queue.Queue()
        self._requests.put(first or hub_pb2.AttachRequest(start=start))
        self.call = hub.Attach(iter(self._requests.get, None), timeout=timeout, metadata=metadata)
        self._responses: queue.Queue[object] = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.ended = False
        self.output = bytearray()
        self.screen: TerminalScreen | None = None
        self.snapshots: list[hub_pb2.AttachSnapshot] = []
        self.exit_code: int | None = None
        self._reader: threading.Thread | None = None
        if read:
            self.start_reading()

    def start_reading(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self._responses.put(response)
        except grpc.RpcError as err:
            self._responses.put(err)
        self._responses.put(_END)

    def send(self, data: bytes) -> None:
        self._requests.put(hub_pb2.AttachRequest(input=data))

    def resize(self, rows: int, cols: int) -> None:
        self._requests.put(hub_pb2.AttachRequest(resize=hub_pb2.AttachSize(rows=rows, cols=cols)))

    def detach(self) -> None:
        self._requests.put(hub_pb2.AttachRequest(detach=hub_pb2.AttachDetach()))

    def half_close(self) -> None:
        """No more requests; responses go on."""
        self._requests.put(None)

    def close(self) -> None:
        self._requests.put(None)
        self.call.cancel()

    def step(self, timeout: float) -> bool:
        """Take one response; False once the stream has ended."""
        if self.ended:
            return False
        item = self._responses.get(timeout=timeout)
        if item is _END:
            self.ended = True
            return False
        if isinstance(item, grpc.RpcError):
            self.error = item
            return True
        assert isinstance(item, hub_pb2.AttachResponse)
        kind = item.WhichOneof("response")
        if kind == "snapshot":
            snap = item.snapshot
            self.snapshots.append(snap)
            self.screen = TerminalScreen(snap.screen.rows, snap.screen.cols)
            self.screen.feed(snap.repaint)
        elif kind == "output":
            self.output += item.output
            assert self.screen is not None, "output before a snapshot"
            self.screen.feed(item.output)
        else:
            assert kind == "end", item
            self.exit_code = item.end.exit_code
        return True

    def until(self, done: object, timeout: float = 20.0) -> None:
        """Read until ``done`` (bytes: seen in the output; callable: true)."""
        deadline = time.monotonic() + timeout
        while not (done() if callable(done) else bytes(done) in self.output):  # type: ignore[call-overload]
            left = deadline - time.monotonic()
            if left <= 0 or not self.step(left):
                raise AssertionError(
                    f"stream ended or timed out waiting for {done!r}; error {self.error!r}; "
                    f"output tail {bytes(self.output[-300:])!r}"
                )

    def finish(self, timeout: float = 20.0) -> None:
        """Read to the end of the stream."""
        deadline = time.monotonic() + timeout
        while self.step(max(0.0, deadline - time.monotonic())):
            pass

    def lines(self) -> str:
        assert self.screen is not None
        return "\n".join(self.screen.view(False).lines)
