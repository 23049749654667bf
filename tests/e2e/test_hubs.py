"""End-to-end: two hubs over the same two backends, behind one Envoy (docs/HUBS.md).

Each hub registers both backends from its own config file and keeps no
sessions of its own (``--no-local-sessions``); Envoy sends each call to
either hub, round robin. What a client may rely on (docs/HUBS.md): a call
naming ``server`` is answered by that backend, whichever hub carries it; a
change made through one hub is seen by that hub's next call
(read-your-writes), and by the other hub once the backend's Link event
reached it, within ``CROSS_HUB_BOUND_S``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.calls import RPC_TIMEOUT, await_idle, create, expect_error, kill, send
from tests.cluster import wait_health, wait_until
from tests.envoy import Envoy, hubs_config
from tests.procs import REPO, ServerProc, assert_no_traceback, stub
from wsh.config import load_file
from wsh.federation.link import HEARTBEAT_INTERVAL_S, HEARTBEAT_MISS_S
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

BACKENDS = ("build-1", "build-2")
HUBS = ("hub-1", "hub-2")
# The documented bound (docs/HUBS.md): a backend pushes a change on every
# hub's Link before it answers that hub's next heartbeat (one a second), and
# a hub that hears nothing for HEARTBEAT_MISS_S marks the backend UNAVAILABLE.
CROSS_HUB_BOUND_S = HEARTBEAT_INTERVAL_S + HEARTBEAT_MISS_S


def documented(lang: str) -> str:
    """The one ``lang`` block of docs/HUBS.md."""
    blocks = (REPO / "docs" / "HUBS.md").read_text().split(f"```{lang}\n")[1:]
    assert len(blocks) == 1, lang
    return blocks[0].split("```", 1)[0]


@dataclass
class Hubs:
    tmp: Path
    backends: dict[str, ServerProc]
    hubs: dict[str, ServerProc]
    direct: dict[str, hub_pb2_grpc.HubServiceStub]
    front: hub_pb2_grpc.HubServiceStub
    envoy: Envoy

    def names(self, hub: hub_pb2_grpc.HubServiceStub, tags: tuple[str, ...] = ()) -> set[str]:
        listed = hub.ListSessions(hub_pb2.ListSessionsRequest(tags=tags), timeout=RPC_TIMEOUT)
        assert not listed.missing_servers, listed.missing_servers
        return {s.name for s in listed.sessions}

    def answering_hub(self) -> str:
        """Which hub Envoy sent this call to."""
        info = self.front.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
        return info.hostname

    def logs(self) -> str:
        return "".join(
            (self.tmp / f"{name}.log").read_text(errors="replace") for name in (*BACKENDS, *HUBS)
        )


@contextlib.contextmanager
def two_hubs(tmp: Path) -> Iterator[Hubs]:
    with contextlib.ExitStack() as stack:
        backends = {
            name: stack.enter_context(ServerProc(name, log_path=tmp / f"{name}.log"))
            for name in BACKENDS
        }
        entries = "".join(f'[[servers]]\naddress = "{b.url}"\n' for b in backends.values())
        hubs: dict[str, ServerProc] = {}
        for name in HUBS:
            config = tmp / f"{name}.toml"
            config.write_text(entries)
            hubs[name] = stack.enter_context(
                ServerProc(
                    name,
                    "--config",
                    str(config),
                    "--no-local-sessions",
                    log_path=tmp / f"{name}.log",
                )
            )
        direct = {}
        for name, proc in hubs.items():
            channel, direct[name] = stub(proc.addr)
            stack.enter_context(channel)
            for backend in BACKENDS:
                wait_health(direct[name], hub_pb2.SERVER_HEALTH_HEALTHY, hostname=backend)
        addrs = [p.addr for p in hubs.values()]
        envoy = stack.enter_context(Envoy(tmp, config=lambda port: hubs_config(port, addrs)))
        channel, front = stub(envoy.addr)
        stack.enter_context(channel)
        cluster = Hubs(tmp, backends, hubs, direct, front, envoy)
        seen: set[str] = set()

        def both_answer() -> bool:
            with contextlib.suppress(grpc.RpcError):  # hubs still being health checked
                seen.add(cluster.answering_hub())
            return seen == set(HUBS)

        wait_until(both_answer, what="Envoy to send calls to both hubs")
        yield cluster
        assert_no_traceback(cluster.logs())


def test_two_hubs_behind_envoy_serve_the_same_backends(tmp_path: Path) -> None:
    with two_hubs(tmp_path) as c:
        # Each backend serves one Link per hub.
        for backend in c.backends.values():
            channel, direct = stub(backend.addr)
            with channel:
                info = direct.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
            assert info.stats.links == len(HUBS)

        # A hub without local sessions refuses a create that names no backend,
        # or names the hub itself: such a session would be invisible to the
        # other hub.
        for server in ("", "hub-1"):
            details = expect_error(
                lambda server=server: create(c.direct["hub-1"], "stray", server),
                grpc.StatusCode.FAILED_PRECONDITION,
                "SERVER_REQUIRED",
            )
            assert "build-1" in details and "build-2" in details

        # Read-your-writes on one hub: its very next call sees the session.
        create(c.direct["hub-1"], "api", "build-1", tags=["fanout"])
        assert "api" in c.names(c.direct["hub-1"])
        # The other hub sees it once build-1's Link event reached it.
        wait_until(
            lambda: "api" in c.names(c.direct["hub-2"]),
            CROSS_HUB_BOUND_S,
            "hub-2 to learn of a session created through hub-1",
        )

        # Through Envoy every call may land on either hub; naming the server
        # makes each one the backend's answer.
        create(c.front, "web", "build-2", tags=["fanout"])
        for hub in c.direct.values():
            wait_until(
                lambda hub=hub: {"api", "web"} <= c.names(hub),
                CROSS_HUB_BOUND_S,
                "both hubs to list both sessions",
            )
        for _ in range(4):  # both hubs, twice, round robin
            assert c.names(c.front, ("fanout",)) == {"api", "web"}
        landed = set()
        for name, server in (("api", "build-1"), ("web", "build-2")):
            generation = send(c.front, name, server, f"echo {name} built\n")
            idle = await_idle(c.front, name, server, last=generation)
            assert idle.server == server
            assert f"{name} built" in idle.screen.lines
            # And by name alone, once both hubs know where the session lives.
            screen = c.front.GetScreen(hub_pb2.GetScreenRequest(name=name), timeout=RPC_TIMEOUT)
            assert screen.server == server
            assert f"{name} built" in screen.screen.lines
            landed.add(c.answering_hub())
            landed.add(c.answering_hub())
        assert landed == set(HUBS)

        # A race through Envoy runs on one hub for its whole stream.
        send(c.front, "api", "build-1", "sleep 1; echo api again\n")
        send(c.front, "web", "build-2", "echo web again\n")
        stream = c.front.RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["fanout"], timeout_ms=300, max_wait_ms=20_000),
            timeout=30,
        )
        settled = {}
        for response in stream:
            if f"{response.idle.session} again" in response.idle.screen.lines:
                settled[response.idle.session] = response.idle.server
            if len(settled) == 2:
                break
        stream.cancel()
        assert settled == {"api": "build-1", "web": "build-2"}

        # A kill through one hub: gone from both within the bound.
        kill(c.front, "api", "build-1")
        kill(c.front, "web", "build-2")
        for hub in c.direct.values():
            wait_until(
                lambda hub=hub: not c.names(hub, ("fanout",)),
                CROSS_HUB_BOUND_S,
                "both hubs to see both sessions killed",
            )


def test_calls_go_on_through_the_other_hub_when_one_is_killed(tmp_path: Path) -> None:
    with two_hubs(tmp_path) as c:
        create(c.direct["hub-1"], "job", "build-1")
        wait_until(
            lambda: "job" in c.names(c.direct["hub-2"]),
            CROSS_HUB_BOUND_S,
            "hub-2 to learn of the session",
        )
        c.hubs["hub-1"].stop(signal.SIGKILL)
        # Envoy retries a call whose connection to the dead hub is refused
        # on the other hub, and its health checks soon stop trying the dead
        # one: no call fails. The session lives on its backend and is served
        # by the hub that is left.
        for i in range(20):
            assert c.answering_hub() == "hub-2"
            generation = send(c.front, "job", "build-1", f"echo step-{i}\n")
            idle = await_idle(c.front, "job", "build-1", last=generation)
            assert f"step-{i}" in idle.screen.lines
        assert c.names(c.front) == {"job"}
        kill(c.front, "job", "build-1")


def test_documented_hub_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(documented("toml"))
    path.chmod(0o600)
    loaded = load_file(path)
    assert not loaded.warnings
    assert loaded.settings["local_sessions"] is False
    assert len(loaded.servers) == 2
