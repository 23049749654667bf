"""One listening address, one server: a second server on an address in use
exits at once with a clear message instead of sharing or stealing it (issue 7.1).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.procs import REPO, ServerProc
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 20


def second_server(listen: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WSH_TOKEN"}
    config = str(tmp_path / "beta.toml")
    argv = [sys.executable, "-m", "wsh", "server", "--listen", listen, "--hostname", "beta",
            "--config", config]  # fmt: skip
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        env=env,
        cwd=REPO,
        check=False,
    )


def hostname_at(addr: str) -> str:
    with grpc.insecure_channel(addr) as channel:
        info = hub_pb2_grpc.HubServiceStub(channel).GetServerInfo(
            hub_pb2.GetServerInfoRequest(), timeout=15
        )
        return info.hostname


def test_second_server_on_a_tcp_port_in_use_exits(tmp_path: Path) -> None:
    with ServerProc("alpha", "--config", str(tmp_path / "alpha.toml")) as alpha:
        done = second_server(alpha.addr, tmp_path)
        assert done.returncode != 0, done.stdout
        assert "listening" not in done.stdout
        assert "ADDRESS_IN_USE" in done.stderr and "Address already in use" in done.stderr
        # Every call still reaches the first server.
        assert {hostname_at(alpha.addr) for _ in range(20)} == {"alpha"}


def test_second_server_on_a_live_unix_socket_exits(tmp_path: Path) -> None:
    path = tmp_path / "wsh.sock"
    with ServerProc("alpha", "--config", str(tmp_path / "alpha.toml"), listen=f"unix:{path}"):
        inode = path.stat().st_ino
        done = second_server(f"unix:{path}", tmp_path)
        assert done.returncode != 0, done.stdout
        assert "ADDRESS_IN_USE" in done.stderr and "another server" in done.stderr
        # The path still belongs to the first server.
        assert path.stat().st_ino == inode
        assert hostname_at(f"unix:{path}") == "alpha"


def test_stale_unix_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "wsh.sock"
    # What a server that crashed leaves behind: a socket file nobody accepts on.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    assert path.exists()
    with ServerProc("alpha", "--config", str(tmp_path / "alpha.toml"), listen=f"unix:{path}"):
        assert hostname_at(f"unix:{path}") == "alpha"


def test_regular_file_at_the_socket_path_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me\n")
    done = second_server(f"unix:{path}", tmp_path)
    assert done.returncode != 0
    assert "Address already in use" in done.stderr
    assert path.read_text() == "keep me\n"
