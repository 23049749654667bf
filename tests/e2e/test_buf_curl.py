"""`buf curl` (a third-party gRPC client) drives a server through reflection alone."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.procs import ServerProc

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    with ServerProc("curlable") as proc:
        yield proc


def buf_curl(server: ServerProc, method: str, body: dict[str, Any]) -> tuple[int, Any]:
    buf = shutil.which("buf")
    assert buf, "buf is not installed (pip package buf-bin)"
    done = subprocess.run(
        [
            buf,
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "-d",
            json.dumps(body),
            f"{server.url}/wsh.v1.HubService/{method}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout if done.returncode == 0 else done.stderr
    return done.returncode, json.loads(out)


def test_create_send_await_read_through_reflection(server: ServerProc) -> None:
    code, created = buf_curl(
        server, "CreateSession", {"name": "viacurl", "command": "bash --norc --noprofile"}
    )
    assert code == 0, created
    assert created["session"]["name"] == "viacurl"
    assert created["session"]["server"] == "curlable"
    code, _ = buf_curl(server, "AwaitIdle", {"name": "viacurl", "timeoutMs": 300})
    assert code == 0
    data = base64.b64encode(b"echo from-buf-$((40+2))\n").decode()
    code, sent = buf_curl(server, "SendInput", {"name": "viacurl", "data": data})
    assert code == 0, sent
    code, idle = buf_curl(
        server,
        "AwaitIdle",
        {"name": "viacurl", "timeoutMs": 300, "lastGeneration": sent["generation"]},
    )
    assert code == 0, idle
    assert "from-buf-42" in idle["idle"]["screen"]["lines"]
    code, screen = buf_curl(
        server, "GetScreen", {"name": "viacurl", "format": "SCREEN_FORMAT_STYLED"}
    )
    assert code == 0
    assert screen["screen"]["styledLines"]
    code, _ = buf_curl(server, "KillSession", {"name": "viacurl"})
    assert code == 0


def test_errors_carry_error_info(server: ServerProc) -> None:
    code, err = buf_curl(server, "GetSession", {"name": "missing"})
    assert code != 0
    assert err["code"] == "not_found"
    assert err["details"][0]["type"] == "google.rpc.ErrorInfo"
    info = base64.b64decode(err["details"][0]["value"] + "==")
    assert b"SESSION_NOT_FOUND" in info
