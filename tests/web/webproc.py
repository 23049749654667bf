"""``wsh web`` as a subprocess, and gRPC-Web calls to it as a browser makes them."""

from __future__ import annotations

import base64
import http.client
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Self
from urllib.parse import unquote

from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from tests.procs import REPO, read_line

SERVING = re.compile(rb"wsh web: serving (http\S+)")
CONTENT_TYPE = "application/grpc-web+proto"


class WebProc:
    """``wsh web --addr HUB`` on a free loopback port; ``url`` is the page."""

    def __init__(
        self, hub: str, *args: str, env: dict[str, str] | None = None, log_path: Path | None = None
    ) -> None:
        self.argv = [sys.executable, "-m", "wsh", "web", "--addr", hub, *args]
        if "--listen" not in args:
            self.argv += ["--listen", "127.0.0.1:0"]
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.lines: list[str] = []

    def start(self, timeout: float = 20.0) -> Self:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env, cwd=REPO
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while True:
            line = read_line(self.proc.stderr, max(0.1, deadline - time.monotonic()))
            if not line:
                raise RuntimeError(f"wsh web exited {self.proc.wait(5)}: {self.lines}")
            self.lines.append(line.decode(errors="replace"))
            match = SERVING.search(line)
            if match:
                self.url = match.group(1).decode()
                return self

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])

    def stop(self, timeout: float = 15.0) -> tuple[int, str]:
        """SIGTERM and wait; the exit code and what it wrote on stderr after start."""
        assert self.proc is not None and self.proc.stderr is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        rest = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.lines.append(rest)
        if self.log_path:
            self.log_path.write_text("".join(self.lines))
        return code, rest

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


class GrpcWebReply:
    """A gRPC-Web response body: messages, then the trailer frame's status."""

    def __init__(self, http_status: int, body: bytes) -> None:
        self.http_status = http_status
        self.messages: list[bytes] = []
        self.trailers: dict[str, str] = {}
        offset = 0
        while offset < len(body):
            flag, length = struct.unpack_from(">BI", body, offset)
            payload = body[offset + 5 : offset + 5 + length]
            offset += 5 + length
            if flag & 0x80:
                for line in payload.decode().split("\r\n"):
                    if line:
                        key, _, value = line.partition(":")
                        self.trailers[key.strip()] = value.strip()
            else:
                self.messages.append(payload)

    @property
    def code(self) -> int:
        return int(self.trailers["grpc-status"])

    @property
    def message(self) -> str:
        return unquote(self.trailers.get("grpc-message", ""))

    @property
    def reason(self) -> str:
        status = status_pb2.Status.FromString(
            base64.b64decode(self.trailers["grpc-status-details-bin"])
        )
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        return info.reason


def grpc_web_call(
    port: int,
    method: str,
    request: Message | bytes,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> GrpcWebReply:
    """One gRPC-Web POST to ``/wsh.v1.HubService/METHOD``, read to its end."""
    body = request if isinstance(request, bytes) else request.SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            f"/wsh.v1.HubService/{method}",
            body=struct.pack(">BI", 0, len(body)) + body,
            headers={"content-type": CONTENT_TYPE, "x-grpc-web": "1", **(headers or {})},
        )
        response = conn.getresponse()
        return GrpcWebReply(response.status, response.read())
    finally:
        conn.close()
