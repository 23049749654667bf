"""``wsh attach`` in a real terminal: a private tmux server's pane runs it,
``send-keys`` types, ``capture-pane`` reads, and the pane's shell must work
as before once it is over."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.calls import RPC_TIMEOUT, create, send
from tests.cluster import wait_until
from tests.procs import ServerProc, stub
from tests.tmux import TmuxServer
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]

PANE = "=pane:"


class Pane:
    def __init__(self, tmux: TmuxServer) -> None:
        self.tmux = tmux

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux.tmux("send-keys", "-t", PANE, *(["-l"] if literal else []), *keys)

    def type(self, line: str) -> None:
        self.keys(line, literal=True)
        self.keys("Enter")

    def text(self) -> str:
        return self.tmux.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", PANE)

    def wait_for(self, wanted: str, timeout: float = 30.0) -> None:
        wait_until(lambda: wanted in self.text(), timeout, f"{wanted!r} in the pane")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProc, hub_pb2_grpc.HubServiceStub]]:
    with ServerProc("attach-cli", "--config", str(tmp_path / "s.toml")) as server:
        channel, hub = stub(server.addr)
        try:
            yield server, hub
        finally:
            channel.close()


@pytest.fixture
def pane(served: tuple[ServerProc, hub_pb2_grpc.HubServiceStub]) -> Iterator[Pane]:
    server, _ = served
    tmux = TmuxServer()
    shell = f"env WSH_ADDR={shlex.quote(server.addr)} PS1='pane$ ' bash --norc --noprofile"
    try:
        tmux.tmux("new-session", "-d", "-s", "pane", "-x", "100", "-y", "30", shell)
        yield Pane(tmux)
    finally:
        try:
            tmux.tmux("kill-server")
        finally:
            tmux.close()


def attach_pid(name: str) -> int:
    """The process running ``wsh attach NAME``."""
    wanted = ["-m", "wsh", "attach", name]
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if argv[1:5] == wanted:
            return int(entry.name)
    raise AssertionError(f"no wsh attach {name} running")


def wsh_attach(*args: str, redirect: str = "") -> str:
    command = shlex.join([sys.executable, "-m", "wsh", "attach", *args])
    return f"{command} {redirect}; echo status=$?"


def test_attach_types_follows_the_window_and_detaches_cleanly(
    served: tuple[ServerProc, hub_pb2_grpc.HubServiceStub], pane: Pane
) -> None:
    _, hub = served
    create(hub, "target")
    send(hub, "target", "", "echo marker-$((5*5))\n")
    pane.wait_for("pane$")
    pane.type(wsh_attach("target"))
    pane.wait_for("marker-25")  # the repaint shows the screen as it was
    assert "detach with Ctrl-\\" in pane.text()
    pane.type("echo typed-$((3*4))")
    pane.wait_for("typed-12")

    # The window's size follows: at attach, then on SIGWINCH.
    def size() -> tuple[int, int]:
        request = hub_pb2.GetSessionRequest(name="target")
        session = hub.GetSession(request, timeout=RPC_TIMEOUT).session
        return session.rows, session.cols

    assert size() == (30, 100)
    pane.tmux.tmux("resize-window", "-t", PANE, "-x", "90", "-y", "20")
    wait_until(lambda: size() == (20, 90), what="the session to follow")
    pane.keys("C-\\")
    pane.wait_for("status=0")
    assert "[wsh: detached from target]" in pane.text()
    # The pane's terminal is as before: cooked, echoing, a working shell.
    pane.type("stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo -e opost | sort | tr '\\n' ,")
    pane.wait_for("echo,icanon,opost,")
    pane.type("echo after-$((2+2))")
    pane.wait_for("after-4")
    assert "pane$ echo after-$((2+2))" in pane.text()  # typed keys echo


def test_session_exit_code_becomes_the_status(
    served: tuple[ServerProc, hub_pb2_grpc.HubServiceStub], pane: Pane
) -> None:
    _, hub = served
    create(hub, "short")
    pane.wait_for("pane$")
    pane.type(wsh_attach("short", "--detach-key", "^]"))
    pane.wait_for("detach with Ctrl-]")
    pane.type("exit 3")
    pane.wait_for("status=3")
    assert "[wsh: short exited with code 3]" in pane.text()
    pane.type("stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | sort | tr '\\n' ,")
    pane.wait_for("echo,icanon,")


def test_errors_and_signals_restore_the_terminal(
    served: tuple[ServerProc, hub_pb2_grpc.HubServiceStub], pane: Pane
) -> None:
    _, hub = served
    pane.wait_for("pane$")
    pane.type(wsh_attach("nobody"))
    pane.wait_for("status=3")
    assert "SESSION_NOT_FOUND" in pane.text()
    create(hub, "victim")
    pane.type(wsh_attach("victim", redirect=">/dev/null"))
    info = hub_pb2.GetServerInfoRequest()
    wait_until(
        lambda: hub.GetServerInfo(info, timeout=RPC_TIMEOUT).stats.attaches == 1,
        what="the attach",
    )
    os.kill(attach_pid("victim"), signal.SIGTERM)
    pane.wait_for("status=143")
    pane.type("stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | sort | tr '\\n' ,")
    pane.wait_for("echo,icanon,")
