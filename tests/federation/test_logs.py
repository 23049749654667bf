"""End-to-end: what peers say reaches the logs quoted and without tokens.

A cluster goes through failure paths (a backend given the wrong token, a
lying backend whose Link and AwaitIdle errors carry escape sequences, a
newline that would forge a log line and the very token the hub presented, a
client with a wrong token, a backend killed). Then every log line of every
wsh process is checked: no token anywhere, no control character, each record
one line. (The lying backends' own stderr is not ours to check.)
"""

from __future__ import annotations

import re
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.cluster import wait_until
from tests.fake_backend import FORGED
from tests.fakes import FakeBackend
from tests.procs import ServerProc, assert_no_traceback
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

RPC_TIMEOUT = 15
HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY
UNAVAILABLE = hub_pb2.SERVER_HEALTH_UNAVAILABLE
# One record per line: the format wsh.server configures, nothing else.
RECORD = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def token(name: str) -> str:
    return f"{name}-{secrets.token_hex(12)}"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Any]]:
    procs: list[Any] = []
    yield procs
    for proc in procs:
        if isinstance(proc, FakeBackend) or (proc.proc is not None and proc.proc.poll() is None):
            proc.stop()


def test_no_token_or_control_character_reaches_a_log(tmp_path: Path, started: list[Any]) -> None:
    tokens = {
        name: token(name)
        for name in ("hub", "ok", "locked", "wrong", "liar-link", "liar-race", "client")
    }

    def server(hostname: str, own_token: str, *args: str) -> ServerProc:
        proc = ServerProc(
            hostname,
            "--config",
            str(tmp_path / f"{hostname}.toml"),
            *args,
            env={"WSH_TOKEN": own_token},
            log_path=tmp_path / f"{hostname}.log",
        )
        started.append(proc)
        return proc.start()

    def fake(hostname: str, **config: Any) -> FakeBackend:
        proc = FakeBackend(tmp_path, hostname, **config)
        started.append(proc)
        return proc.start()

    ok = server("be-ok", tokens["ok"])
    locked = server("be-locked", tokens["locked"])
    hub_proc = server("hub", tokens["hub"], "--log-level", "DEBUG")
    liar_link = fake("liar-link", link="echo")
    liar_race = fake(
        "liar-race",
        sessions=[
            {"name": "echo-1", "server": "x", "rows": 24, "cols": 80, "state": 1, "tags": ["echo"]}
        ],
    )
    auth = (("authorization", f"Bearer {tokens['hub']}"),)

    with grpc.insecure_channel(hub_proc.addr) as channel:
        hub = hub_pb2_grpc.HubServiceStub(channel)

        def add(url: str, backend_token: str) -> hub_pb2.Server:
            request = hub_pb2.AddServerRequest(
                address=url, token=backend_token, wait=True, wait_timeout_ms=3000
            )
            return hub.AddServer(request, metadata=auth, timeout=RPC_TIMEOUT).server

        assert add(ok.url, tokens["ok"]).health == HEALTHY
        refused = add(locked.url, tokens["wrong"])
        assert refused.health == UNAVAILABLE and "authentication" in refused.last_error
        lying = add(liar_link.url, tokens["liar-link"])
        assert lying.health == UNAVAILABLE, lying
        # The reason is kept, quoted: the forged line is inside it, escaped.
        assert "\\x0aFORGED-LOG-LINE" in lying.last_error, lying.last_error
        assert "token=***" in lying.last_error
        assert add(liar_race.url, tokens["liar-race"]).health == HEALTHY

        # A race whose confirmation by the liar fails with the same kind of text.
        race = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["echo"], timeout_ms=200, max_wait_ms=1500),
            metadata=auth,
            timeout=RPC_TIMEOUT,
        )
        with pytest.raises(grpc.RpcError):
            for _ in race:
                pass
        wait_until(
            lambda: (
                "liar-race" in (tmp_path / "hub.log").read_text()
                and "race: confirming 'echo-1' on backend liar-race"
                in (tmp_path / "hub.log").read_text()
            ),
            10,
            "the race confirmation's failure in the hub log",
        )
        # A client with a wrong token.
        with pytest.raises(grpc.RpcError) as denied:
            hub.ListServers(
                hub_pb2.ListServersRequest(),
                metadata=(("authorization", f"Bearer {tokens['client']}"),),
                timeout=RPC_TIMEOUT,
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # A backend killed under the hub.
        ok.stop(signal.SIGKILL)

        def ok_down() -> bool:
            listed = hub.ListServers(
                hub_pb2.ListServersRequest(), metadata=auth, timeout=RPC_TIMEOUT
            ).servers
            return any(s.address == ok.url and s.health == UNAVAILABLE for s in listed)

        wait_until(ok_down, 15, "the killed backend to be unavailable")
        listed = hub.ListServers(
            hub_pb2.ListServersRequest(), metadata=auth, timeout=RPC_TIMEOUT
        ).servers
        for entry in listed:
            assert not CONTROL.search(entry.last_error), entry
            assert not any(t in entry.last_error for t in tokens.values()), entry

    for proc in started:
        if isinstance(proc, ServerProc) and proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("hub", "be-ok", "be-locked")}
    assert "\\x0aFORGED-LOG-LINE" in logs["hub"], "the liar's Link error never reached the log"
    for name, text in logs.items():
        assert_no_traceback(text)
        for secret_name, secret in tokens.items():
            assert secret not in text, f"token {secret_name} in the log of {name}"
        for number, line in enumerate(text.splitlines(), 1):
            assert RECORD.match(line), f"{name}.log line {number} is not a record: {line!r}"
            assert not CONTROL.search(line), f"{name}.log line {number}: {line!r}"
            assert not line.startswith(FORGED[:15])
