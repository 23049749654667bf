"""The `wsh` command against a real server, as a person or a script uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ServerProc

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    config = tmp_path_factory.mktemp("cli") / "hub.toml"
    with ServerProc("cli-hub", "--config", str(config)) as proc:
        yield proc


def wsh(server: ServerProc, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WSH_ADDR": server.addr}
    env.pop("WSH_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "wsh", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def ok(server: ServerProc, *args: str) -> str:
    done = wsh(server, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_agent_loop_with_json(server: ServerProc) -> None:
    created = json.loads(
        ok(server, "--json", "create", "cli1", "--command", "bash --norc", "--tag", "ci")
    )
    assert created["name"] == "cli1" and created["tags"] == ["ci"]
    ok(server, "idle", "cli1", "--timeout-ms", "300")
    screen = ok(server, "run", "cli1", r"echo cli-$((1+1))\n", "--timeout-ms", "300")
    assert "cli-2" in screen.splitlines()
    listed = json.loads(ok(server, "--json", "list", "--tag", "ci"))
    assert [s["name"] for s in listed] == ["cli1"]
    table = ok(server, "list")
    assert "cli1" in table and "NAME" in table.splitlines()[0]
    # The CLI turns escapes into bytes: \x41 is "A", \n is Enter.
    ok(server, "send", "cli1", r"echo X\x41Y\n")
    idle = json.loads(ok(server, "--json", "idle", "cli1", "--timeout-ms", "300"))
    assert "XAY" in idle["screen"]["lines"]
    raced = ok(server, "race", "--tag", "ci", "--timeout-ms", "200")
    assert "cli1" in raced
    ok(server, "rename", "cli1", "cli2")
    tagged = json.loads(ok(server, "--json", "tag", "cli2", "--add", "x", "--remove", "ci"))
    assert tagged["tags"] == ["x"]
    ok(server, "kill", "cli2")


def test_errors_exit_non_zero_with_reason(server: ServerProc) -> None:
    done = wsh(server, "get", "no-such-session")
    assert done.returncode == 1
    assert "SESSION_NOT_FOUND" in done.stderr
    done = wsh(server, "get", "x", "--server", "elsewhere")
    assert done.returncode == 1 and "SERVER_NOT_FOUND" in done.stderr


def test_servers_commands(server: ServerProc, tmp_path: Path) -> None:
    listed = ok(server, "servers")
    assert "cli-hub" in listed and "local" in listed
    with ServerProc("cli-backend", "--config", str(tmp_path / "b.toml")) as backend:
        added = ok(server, "servers", "add", backend.url)
        assert "HEALTHY" in added.upper()
        info = json.loads(ok(server, "--json", "servers", "get", "cli-backend"))
        assert info["hostname"] == "cli-backend"
        ok(server, "create", "remote1", "--server", "cli-backend", "--command", "cat")
        listed_json = json.loads(ok(server, "--json", "list"))
        assert {"remote1": "cli-backend"}.items() <= {
            s["name"]: s["server"] for s in listed_json
        }.items()
        ok(server, "kill", "remote1", "--server", "cli-backend")
        ok(server, "servers", "remove", "cli-backend")
        assert "cli-backend" not in ok(server, "servers")
    bad = wsh(server, "servers", "add", "127.0.0.1:1")
    assert bad.returncode == 1 and "ADDRESS_INVALID" in bad.stderr and "http://" in bad.stderr
