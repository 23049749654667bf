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


def buf_curl(
    server: ServerProc, method: str, body: dict[str, Any], reflect: str = "grpc-v1"
) -> tuple[int, Any]:
    buf = shutil.which("buf")
    assert buf, "buf is not installed (pip package buf-bin)"
    done = subprocess.run(
        [
            buf,
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--reflect-protocol",
            reflect,
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


@pytest.mark.parametrize("reflect", ["grpc-v1", "grpc-v1alpha"])
def test_create_send_await_read_through_reflection(server: ServerProc, reflect: str) -> None:
    def call(method: str, body: dict[str, Any]) -> Any:
        code, answer = buf_curl(server, method, body, reflect)
        assert code == 0, answer
        return answer

    name = f"viacurl-{reflect}"
    created = call("CreateSession", {"name": name, "command": "bash --norc --noprofile"})
    assert created["session"]["name"] == name
    assert created["session"]["server"] == "curlable"
    call("AwaitIdle", {"name": name, "timeoutMs": 300})
    # Text, as a JSON user types it; bytes (base64) work too.
    sent = call("SendInput", {"name": name, "text": "echo from-buf-$((40+2))\n"})
    idle = call("AwaitIdle", {"name": name, "timeoutMs": 300, "lastGeneration": sent["generation"]})
    assert "from-buf-42" in idle["idle"]["screen"]["lines"]
    data = base64.b64encode(b"echo raw-$((1+1))\n").decode()
    sent = call("SendInput", {"name": name, "data": data})
    idle = call("AwaitIdle", {"name": name, "timeoutMs": 300, "lastGeneration": sent["generation"]})
    assert "raw-2" in idle["idle"]["screen"]["lines"]
    screen = call("GetScreen", {"name": name, "format": "SCREEN_FORMAT_STYLED"})
    assert screen["screen"]["styledLines"]
    # 32-bit counts are JSON numbers; generations (64-bit) are strings.
    assert isinstance(screen["screen"]["totalLines"], int)
    assert isinstance(sent["generation"], str)
    call("KillSession", {"name": name})


def test_errors_carry_error_info(server: ServerProc) -> None:
    code, err = buf_curl(server, "GetSession", {"name": "missing"})
    assert code != 0
    assert err["code"] == "not_found"
    assert err["details"][0]["type"] == "google.rpc.ErrorInfo"
    info = base64.b64decode(err["details"][0]["value"] + "==")
    assert b"SESSION_NOT_FOUND" in info
