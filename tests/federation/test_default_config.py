"""Servers started without ``--config`` never share registrations.

Each one's default config file is named after its listen address
(``server-HOST-PORT.toml``); with a random port there is none, and backends
added live for that run only.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.calls import RPC_TIMEOUT
from tests.procs import ServerProc, assert_no_traceback, stub
from wsh.config import default_config_path
from wsh.v1 import hub_pb2

HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("listen", "name"),
    [
        ("127.0.0.1:7600", "server-127.0.0.1-7600.toml"),
        ("0.0.0.0:7601", "server-0.0.0.0-7601.toml"),
        ("[::1]:7600", "server-__1-7600.toml"),
        ("localhost:80", "server-localhost-80.toml"),
        ("unix:/run/wsh/sock", "server-unix-_run_wsh_sock.toml"),
        ("unix:///run/wsh/sock", "server-unix-_run_wsh_sock.toml"),
        ("unix:wsh.sock", "server-unix-wsh.sock.toml"),
    ],
)
def test_default_config_file_is_named_after_the_listen_address(
    listen: str, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path(listen) == tmp_path / "wsh" / name


def test_random_port_has_no_default_config_file() -> None:
    assert default_config_path("127.0.0.1:0") is None
    assert default_config_path("[::]:0") is None


@pytest.mark.e2e
def test_two_default_servers_on_one_host_do_not_share_registrations(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(xdg), "WSH_CONFIG": ""}
    port_a, port_b = free_port(), free_port()
    a = ServerProc(
        "node-a", listen=f"127.0.0.1:{port_a}", env=env, log_path=tmp_path / "node-a.log"
    )
    b = ServerProc(
        "node-b", listen=f"127.0.0.1:{port_b}", env=env, log_path=tmp_path / "node-b.log"
    )
    random = ServerProc("node-r", env=env, log_path=tmp_path / "node-r.log")
    try:
        a.start()
        b.start()
        random.start()
        channel, hub = stub(a.addr)
        with channel:
            added = hub.AddServer(
                hub_pb2.AddServerRequest(address=b.url, wait=True), timeout=RPC_TIMEOUT
            ).server
            assert added.health == HEALTHY, added
        a_config = xdg / "wsh" / f"server-127.0.0.1-{port_a}.toml"
        assert b.url in a_config.read_text()

        b.stop()
        b.start()
        channel, hub = stub(b.addr)
        with channel:
            listed = hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
        assert [s.address for s in listed] == ["local"], listed
        assert not (xdg / "wsh" / f"server-127.0.0.1-{port_b}.toml").exists()

        # A random port: the registration lives for this run, and says so once.
        channel, hub = stub(random.addr)
        with channel:
            for _ in range(2):
                hub.AddServer(
                    hub_pb2.AddServerRequest(address=a.url if _ == 0 else b.url, wait=True),
                    timeout=RPC_TIMEOUT,
                )
            listed = hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
        assert sorted(s.address for s in listed) == sorted(["local", a.url, b.url])
        assert sorted(p.name for p in (xdg / "wsh").glob("*.toml")) == [a_config.name]
    finally:
        for proc in (a, b, random):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()
    logs = {p.hostname: (tmp_path / f"{p.hostname}.log").read_text() for p in (a, b, random)}
    assert f"config file: {a_config}" in logs["node-a"]
    assert logs["node-r"].count("are not saved") == 1, logs["node-r"]
    assert "--config" in logs["node-r"]
    # node-b is left out: stopped while node-a's Link to it is open, it may log
    # grpc's CancelledError for that stream after the shutdown grace (a
    # shutdown matter of BackendService.Link, not of config files).
    for name in ("node-a", "node-r"):
        assert_no_traceback(logs[name])
