"""End-to-end: fake backends that speak BackendService but lie cannot hurt the hub.

Each fake (``tests/fake_backend.py``) is its own process on 127.0.0.1. It
claims the hub's hostname or an invalid one, sends invalid or oversized
inventories, floods the Link with events, never says who it is, or answers
the hub's calls with garbage. Through all of it the hub stays alive and
responsive, its own sessions keep working, nothing a fake made up reaches a
client unchecked, and no error message carries a raw control character.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2

from tests.cluster import server_entry, wait_until
from tests.fakes import FakeBackend, session_dict
from tests.procs import ServerProc, assert_no_traceback, error_reason
from wsh.names import is_valid_session_name
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

HUB = "hub"
RPC_TIMEOUT = 10
# The hub answers a cheap call within this, whatever a backend does.
PROMPT_S = 0.5
HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY
CONNECTING = hub_pb2.SERVER_HEALTH_CONNECTING
UNAVAILABLE = hub_pb2.SERVER_HEALTH_UNAVAILABLE
REJECTED = hub_pb2.SERVER_HEALTH_REJECTED
# C0 and C1 controls and DEL: none may reach a client in an error text.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def hub_proc(tmp: Path) -> Iterator[ServerProc]:
    with ServerProc(HUB, "--config", str(tmp / "hub.toml"), log_path=tmp / "hub.log") as proc:
        yield proc
        assert proc.proc is not None and proc.proc.poll() is None, "the hub died"
    assert_no_traceback((tmp / "hub.log").read_text(errors="replace"))


@pytest.fixture
def hub(hub_proc: ServerProc) -> Iterator[hub_pb2_grpc.HubServiceStub]:
    channel = grpc.insecure_channel(
        hub_proc.addr, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    )
    with channel:
        yield hub_pb2_grpc.HubServiceStub(channel)


@pytest.fixture
def fakes(tmp: Path) -> Iterator[Callable[..., FakeBackend]]:
    started: list[FakeBackend] = []

    def make(hostname: str, **config: Any) -> FakeBackend:
        fake = FakeBackend(tmp, hostname, **config)
        started.append(fake)
        return fake.start()

    yield make
    for fake in started:
        fake.stop()


def add(hub: hub_pb2_grpc.HubServiceStub, url: str, wait: bool = False) -> hub_pb2.Server:
    request = hub_pb2.AddServerRequest(address=url, wait=wait, wait_timeout_ms=8000)
    return hub.AddServer(request, timeout=RPC_TIMEOUT).server


def entry(hub: hub_pb2_grpc.HubServiceStub, url: str) -> hub_pb2.Server:
    found = server_entry(hub, address=url)
    assert found is not None, url
    return found


def wait_for(
    hub: hub_pb2_grpc.HubServiceStub, url: str, health: int, timeout: float = 10
) -> hub_pb2.Server:
    def reached() -> bool:
        return entry(hub, url).health == health and bool(entry(hub, url).last_error)

    wait_until(reached, timeout, f"{url} to reach health {health} with an error")
    return entry(hub, url)


def assert_clean_text(text: str, limit: int = 1000) -> None:
    assert not CONTROL.search(text), f"raw control character in {text!r}"
    assert len(text) <= limit, f"{len(text)} characters: {text[:200]!r}..."


def timed(call: Callable[[], Any]) -> float:
    start = time.monotonic()
    call()
    return time.monotonic() - start


def responsiveness(hub: hub_pb2_grpc.HubServiceStub) -> float:
    """The slowest of a few cheap calls on the hub."""
    return max(
        timed(lambda: hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT)),
        timed(
            lambda: hub.ListSessions(hub_pb2.ListSessionsRequest(server=HUB), timeout=RPC_TIMEOUT)
        ),
        timed(lambda: hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)),
    )


def observe(
    hub: hub_pb2_grpc.HubServiceStub, urls: list[str], seconds: float
) -> tuple[dict[str, set[int]], float, int]:
    """Poll for ``seconds``: the healths each backend went through, the
    slowest hub answer, and the largest session count any backend reached."""
    healths: dict[str, set[int]] = {url: set() for url in urls}
    slowest = 0.0
    most_sessions = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        slowest = max(slowest, responsiveness(hub))
        servers = hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
        for server in servers[1:]:
            if server.address in healths:
                healths[server.address].add(server.health)
                most_sessions = max(most_sessions, server.session_count)
        time.sleep(0.05)
    return healths, slowest, most_sessions


def local_round_trip(hub: hub_pb2_grpc.HubServiceStub, name: str = "round-trip") -> None:
    """The hub's own sessions keep working: create, send, wait, read, kill."""
    hub.CreateSession(hub_pb2.CreateSessionRequest(name=name, command="cat"), timeout=RPC_TIMEOUT)
    sent = hub.SendInput(
        hub_pb2.SendInputRequest(name=name, data=b"still-here\n"), timeout=RPC_TIMEOUT
    )
    idle = hub.AwaitIdle(
        hub_pb2.AwaitIdleRequest(
            name=name, timeout_ms=200, max_wait_ms=5000, last_generation=sent.generation
        ),
        timeout=RPC_TIMEOUT,
    ).idle
    assert idle.server == HUB and "still-here" in idle.screen.lines, idle.screen.lines
    hub.KillSession(hub_pb2.KillSessionRequest(name=name), timeout=RPC_TIMEOUT)


def expect(call: Callable[[], Any], code: grpc.StatusCode, reason: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err: Any = info.value
    assert err.code() == code, (err.code(), err.details())
    assert error_reason(err) == reason, (error_reason(err), err.details())
    assert_clean_text(err.details() or "")
    return info.value


# -- (a) the hub's hostname, and another server's ---------------------------------


def test_backend_claiming_a_taken_hostname_is_rejected(
    hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend], tmp: Path
) -> None:
    with ServerProc("real-1", "--config", str(tmp / "real.toml")) as real:
        assert add(hub, real.url, wait=True).health == HEALTHY
        hub.CreateSession(
            hub_pb2.CreateSessionRequest(server="real-1", name="theirs", command="cat"),
            timeout=RPC_TIMEOUT,
        )
        hub.CreateSession(
            hub_pb2.CreateSessionRequest(name="mine", command="cat"), timeout=RPC_TIMEOUT
        )
        inventory = [session_dict("mine"), session_dict("theirs"), session_dict("fake-only")]
        as_hub = fakes(HUB, sessions=inventory)
        as_real = fakes("real-1", sessions=inventory)
        for fake, holder in ((as_hub, "this hub"), (as_real, real.url)):
            server = add(hub, fake.url, wait=True)
            assert server.health == REJECTED, server
            assert server.last_error.startswith("HOSTNAME_TAKEN"), server.last_error
            assert holder in server.last_error
            assert server.session_count == 0

        # The names still lead where they did.
        mine = hub.GetSession(
            hub_pb2.GetSessionRequest(server=HUB, name="mine"), timeout=RPC_TIMEOUT
        ).session
        theirs = hub.GetSession(
            hub_pb2.GetSessionRequest(server="real-1", name="theirs"), timeout=RPC_TIMEOUT
        ).session
        assert (mine.server, theirs.server) == (HUB, "real-1")
        assert theirs.pid != 4242  # the fake's made-up pid
        listed = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT).sessions
        assert sorted((s.server, s.name) for s in listed) == [(HUB, "mine"), ("real-1", "theirs")]
        for name in ("fake-only", "theirs"):
            expect(
                lambda n=name: hub.GetSession(  # type: ignore[misc]
                    hub_pb2.GetSessionRequest(server=HUB, name=n), timeout=RPC_TIMEOUT
                ),
                grpc.StatusCode.NOT_FOUND,
                "SESSION_NOT_FOUND",
            )
        # A rejected backend stays rejected and is never called.
        time.sleep(1.5)
        for fake in (as_hub, as_real):
            assert entry(hub, fake.url).health == REJECTED
            assert fake.calls() == []
        hub.KillSession(hub_pb2.KillSessionRequest(name="mine"), timeout=RPC_TIMEOUT)
        local_round_trip(hub)


# -- (b) invalid hostnames --------------------------------------------------------

BAD_HOSTNAMES = [
    "-bad",
    "a b",
    "x" * 300,
    "evil\x1b[31mred\x1b[0m",
    "\x1b]0;owned\x07",
    "bidi\u202etxt.exe",
    "nul\x00byte",
    "",
    "..",
    "ünïcode",
]


def test_invalid_hostnames_are_refused_with_clean_errors(
    hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend]
) -> None:
    started = [fakes(name) for name in BAD_HOSTNAMES]
    for fake in started:
        add(hub, fake.url)
    for fake in started:
        server = wait_for(hub, fake.url, UNAVAILABLE)
        assert "invalid hostname" in server.last_error, server.last_error
        assert_clean_text(server.last_error)
        assert server.hostname == "" and server.session_count == 0
    healths, slowest, _ = observe(hub, [f.url for f in started], 1.5)
    assert all(HEALTHY not in seen for seen in healths.values()), healths
    assert slowest < PROMPT_S, slowest
    names = {
        s.hostname
        for s in hub.ListServers(hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT).servers
    }
    assert names == {HUB, ""}
    local_round_trip(hub)


# -- (c) invalid and oversized inventories ----------------------------------------

BAD_INVENTORIES: dict[str, list[dict[str, Any]]] = {
    "space": [session_dict("a b")],
    "escape": [session_dict("\x1b[2Jx")],
    "empty": [session_dict("")],
    "long": [session_dict("n" * 65)],
    "tag": [session_dict("ok", tags=["t t"])],
    "tag-escape": [session_dict("ok", tags=["\x1b[31m"])],
    "many-tags": [session_dict("ok", tags=[f"t{i}" for i in range(65)])],
    "twice": [session_dict("same"), session_dict("same")],
    "rows": [session_dict("ok", rows=0)],
    "cols": [session_dict("ok", cols=5000)],
    "pid": [session_dict("ok", pid=-5)],
}


def test_invalid_inventories_are_refused(
    hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend]
) -> None:
    started = {
        label: fakes(f"inv-{label}", sessions=[session_dict("fine"), *sessions])
        for label, sessions in BAD_INVENTORIES.items()
    }
    for fake in started.values():
        add(hub, fake.url)
    for label, fake in started.items():
        server = wait_for(hub, fake.url, UNAVAILABLE)
        assert server.last_error.startswith(f"Backend 'inv-{label}' "), server.last_error
        assert_clean_text(server.last_error)
        assert server.session_count == 0
        expect(
            lambda h=fake.hostname: hub.GetSession(  # type: ignore[misc]
                hub_pb2.GetSessionRequest(server=h, name="fine"), timeout=RPC_TIMEOUT
            ),
            grpc.StatusCode.UNAVAILABLE,
            "SERVER_UNAVAILABLE",
        )
    healths, slowest, most = observe(hub, [f.url for f in started.values()], 1.5)
    assert all(HEALTHY not in seen for seen in healths.values()), healths
    assert most == 0 and slowest < PROMPT_S, (most, slowest)
    listed = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT).sessions
    assert list(listed) == []
    assert not any(fake.calls() for fake in started.values())
    local_round_trip(hub)


# -- (d) 100,000 sessions ---------------------------------------------------------


def test_inventory_of_100000_sessions_is_refused(
    hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend]
) -> None:
    fake = fakes("huge", generated=100_000)
    add(hub, fake.url)
    server = wait_for(hub, fake.url, UNAVAILABLE, timeout=20)
    assert "100000 sessions" in server.last_error and "10000" in server.last_error, (
        server.last_error
    )
    # It keeps reconnecting with its 100,000 sessions: the hub keeps answering.
    healths, slowest, most = observe(hub, [fake.url], 4)
    assert HEALTHY not in healths[fake.url] and most == 0, healths
    assert slowest < PROMPT_S, slowest
    local_round_trip(hub)


# -- (e) events without end -------------------------------------------------------


def test_endless_events_are_capped(
    hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend]
) -> None:
    info = hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
    rss_before = info.stats.rss_bytes
    fake = fakes("flooder", link="flood", sessions=[session_dict("first")])
    add(hub, fake.url)
    deadline = time.monotonic() + 8
    rss_most = rss_before
    slowest = 0.0
    most = 0
    errors: set[str] = set()
    while time.monotonic() < deadline:
        slowest = max(slowest, responsiveness(hub))
        stats = hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT).stats
        rss_most = max(rss_most, stats.rss_bytes)
        server = entry(hub, fake.url)
        most = max(most, server.session_count)
        if server.last_error:
            errors.add(server.last_error)
        time.sleep(0.05)
    assert most <= 10_000, most
    assert any("10000" in e and "sessions" in e for e in errors), errors
    for error in errors:
        assert_clean_text(error)
    assert slowest < PROMPT_S, slowest
    assert rss_most - rss_before < 200 * 1024 * 1024, (rss_before, rss_most)
    local_round_trip(hub)


# -- (f) no identity --------------------------------------------------------------


def test_link_without_identity_never_gets_healthy(
    hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend]
) -> None:
    silent = fakes("silent", link="silent")
    half = fakes("half", link="identity-only")
    wrong = fakes("wrong", link="heartbeat-first")
    urls = [silent.url, half.url, wrong.url]
    for url in urls:
        assert add(hub, url).health in (CONNECTING, UNAVAILABLE)
    server = wait_for(hub, wrong.url, UNAVAILABLE, timeout=5)
    assert "identity" in server.last_error, server.last_error
    healths, slowest, _ = observe(hub, urls, 6.5)  # past the 5 s handshake limit
    for url in urls:
        assert HEALTHY not in healths[url], (url, healths)
        assert healths[url] <= {CONNECTING, UNAVAILABLE}, (url, healths)
    assert slowest < PROMPT_S, slowest
    for fake in (silent, half):
        server = entry(hub, fake.url)
        assert server.health in (CONNECTING, UNAVAILABLE)
        if server.health == UNAVAILABLE:
            assert "no message from the backend" in server.last_error, server.last_error
    # A wait for such a backend ends on its own timeout, not never.
    waited = timed(
        lambda: hub.AddServer(
            hub_pb2.AddServerRequest(address=silent.url + "/p", wait=True, wait_timeout_ms=1000),
            timeout=RPC_TIMEOUT,
        )
    )
    assert waited < 3, waited
    local_round_trip(hub)


# -- (g) lying answers ------------------------------------------------------------

LIAR = "liar-host"


@pytest.fixture
def liar(hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend]) -> FakeBackend:
    inventory = [
        session_dict("plain", tags=["plain"]),
        session_dict("other-name", tags=["bad-names"]),
        # Races ask each for its screen: 1 MB each.
        *(session_dict(f"flood-{i}", tags=["flood"]) for i in range(64)),
    ]
    fake = fakes(LIAR, sessions=inventory)
    assert add(hub, fake.url, wait=True).health == HEALTHY
    hub.CreateSession(
        hub_pb2.CreateSessionRequest(name="mine", command="cat", tags=["plain", "bad-names"]),
        timeout=RPC_TIMEOUT,
    )
    return fake


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("GetScreen", "rows5000"),
        ("GetScreen", "lines5000"),
        ("GetScreen", "wide"),
        ("AwaitIdle", "rows5000"),
        ("AwaitIdle", "lines5000"),
        ("AwaitIdle", "wide"),
        ("GetScrollback", "lines5000"),
        ("GetScrollback", "wide"),
    ],
)
def test_oversized_screens_are_refused(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend, method: str, name: str
) -> None:
    request = getattr(hub_pb2, f"{method}Request")(server=LIAR, name=name)
    expect(
        lambda: getattr(hub, method)(request, timeout=RPC_TIMEOUT),
        grpc.StatusCode.UNAVAILABLE,
        "BACKEND_INVALID",
    )
    assert entry(hub, liar.url).health == HEALTHY
    local_round_trip(hub)


def test_lying_server_fields_are_replaced(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend
) -> None:
    for server in (LIAR, ""):
        listed = hub.ListSessions(
            hub_pb2.ListSessionsRequest(server=server), timeout=RPC_TIMEOUT
        ).sessions
        assert any(s.server == LIAR for s in listed), listed
        assert all(s.server in (HUB, LIAR) for s in listed), listed
    raced = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["plain"], max_wait_ms=5000), timeout=RPC_TIMEOUT
    )
    seen = set()
    for response in raced:
        seen.add((response.idle.server, response.idle.session))
        if len(seen) == 2:
            break
    raced.cancel()
    assert seen == {(HUB, "mine"), (LIAR, "plain")}, seen
    # Last: the liar's answers to these changes never show in its Link
    # inventory, so the hub writes them there itself (read-your-writes).
    for call, request in (
        (hub.GetSession, hub_pb2.GetSessionRequest(server=LIAR, name="plain")),
        (hub.CreateSession, hub_pb2.CreateSessionRequest(server=LIAR, name="plain")),
        (hub.UpdateSession, hub_pb2.UpdateSessionRequest(server=LIAR, name="plain")),
        (hub.ResizeSession, hub_pb2.ResizeSessionRequest(server=LIAR, name="plain")),
    ):
        assert call(request, timeout=RPC_TIMEOUT).session.server == LIAR
    idle = hub.AwaitIdle(
        hub_pb2.AwaitIdleRequest(server=LIAR, name="plain"), timeout=RPC_TIMEOUT
    ).idle
    assert (idle.server, idle.session) == (LIAR, "plain")


def test_answers_about_another_session_are_refused(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend
) -> None:
    for call, request in (
        (hub.GetSession, hub_pb2.GetSessionRequest(server=LIAR, name="other-name")),
        (hub.AwaitIdle, hub_pb2.AwaitIdleRequest(server=LIAR, name="other-name")),
    ):
        expect(
            lambda c=call, r=request: c(r, timeout=RPC_TIMEOUT),  # type: ignore[misc]
            grpc.StatusCode.UNAVAILABLE,
            "BACKEND_INVALID",
        )


def test_session_lists_never_carry_garbage(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend
) -> None:
    """Whether the hub asks the liar (which answers with invalid names or
    50,000 sessions) or lists its Link inventory, nothing invalid comes out."""
    for tag in ("bad-names", "many"):
        for server in (LIAR, ""):
            request = hub_pb2.ListSessionsRequest(server=server, tags=[tag])
            try:
                listed = hub.ListSessions(request, timeout=RPC_TIMEOUT).sessions
            except grpc.RpcError as err:
                assert server == LIAR, err  # cluster-wide, the liar is left out
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err  # type: ignore[attr-defined]
                assert error_reason(err) == "BACKEND_INVALID", err
                continue
            assert len(listed) <= 10_000
            for session in listed:
                assert is_valid_session_name(session.name), session.name
                assert session.server in (HUB, LIAR), session.server
            if tag == "bad-names" and not server:
                assert (HUB, "mine") in {(s.server, s.name) for s in listed}


def test_lying_heartbeat_activity_is_contained(
    hub: hub_pb2_grpc.HubServiceStub, fakes: Callable[..., FakeBackend]
) -> None:
    """Heartbeats reporting activity of sessions never announced cannot invent
    sessions; absurd generations and idle times get the backend refused, and
    listing the cluster goes on working."""
    huge = str(2**64 - 1)
    ghosts = fakes(
        "ghosts",
        sessions=[session_dict("plain")],
        activity=[
            {"name": "ghost", "generation": "5", "lastActivityMs": "5"},
            {"name": "\x1b[2J", "generation": "5", "lastActivityMs": "5"},
        ],
    )
    absurd = fakes(
        "absurd",
        sessions=[session_dict("plain")],
        activity=[{"name": "plain", "generation": huge, "lastActivityMs": str(2**32 - 1)}],
    )
    assert add(hub, ghosts.url, wait=True).health == HEALTHY
    add(hub, absurd.url)
    server = wait_for(hub, absurd.url, UNAVAILABLE)
    assert "activity" in server.last_error, server.last_error
    assert_clean_text(server.last_error)
    deadline = time.monotonic() + 3  # a few heartbeats of each
    while time.monotonic() < deadline:
        listed = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT).sessions
        found = {(s.server, s.name) for s in listed}
        # The absurd one is listed only between a reconnect and its first heartbeat.
        assert ("ghosts", "plain") in found, listed
        assert found <= {("ghosts", "plain"), ("absurd", "plain")}, listed
        assert entry(hub, ghosts.url).health == HEALTHY
        time.sleep(0.2)
    local_round_trip(hub)


def test_backend_that_never_answers_is_left_out_of_lists(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend
) -> None:
    listed: list[Any] = []
    took = timed(
        lambda: listed.extend(
            hub.ListSessions(
                hub_pb2.ListSessionsRequest(tags=["hang", "plain"]), timeout=30
            ).sessions
        )
    )
    assert took < 8, took
    assert (HUB, "mine") in {(s.server, s.name) for s in listed}, listed
    assert all(s.server in (HUB, LIAR) for s in listed), listed
    assert entry(hub, liar.url).health == HEALTHY


def test_race_answers_about_another_session_are_dropped(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend
) -> None:
    # Asked to confirm "other-name", the liar answers about another session:
    # that answer is dropped; the hub's own session still settles.
    raced = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(tags=["bad-names"], max_wait_ms=5000), timeout=RPC_TIMEOUT
    )
    first = next(raced).idle
    raced.cancel()
    assert (first.server, first.session) == (HUB, "mine")
    # Only the liar in scope: nothing valid ever settles.
    only = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(server=LIAR, tags=["bad-names"], max_wait_ms=1500),
        timeout=RPC_TIMEOUT,
    )
    expect(lambda: list(only), grpc.StatusCode.DEADLINE_EXCEEDED, "IDLE_TIMEOUT")
    assert "AwaitIdle" in liar.calls()
    local_round_trip(hub)


def test_race_flood_from_a_backend_stays_bounded(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend
) -> None:
    """Idles of 1 MB each, 64 of them, to a client that stops reading."""
    before = hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT).stats
    raced = hub.RaceIdle(
        hub_pb2.RaceIdleRequest(server=LIAR, tags=["flood"], max_wait_ms=60_000), timeout=30
    )
    first = next(raced).idle
    assert first.server == LIAR
    rss_most = before.rss_bytes
    slowest = 0.0
    for _ in range(30):
        slowest = max(slowest, responsiveness(hub))
        stats = hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT).stats
        rss_most = max(rss_most, stats.rss_bytes)
        time.sleep(0.1)
    raced.cancel()
    assert rss_most - before.rss_bytes < 200 * 1024 * 1024, (before.rss_bytes, rss_most)
    assert slowest < PROMPT_S, slowest
    wait_until(
        lambda: (
            hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT).stats.races == 0
        ),
        10,
        "the race to end",
    )
    local_round_trip(hub)


@pytest.mark.parametrize(
    "name", ["err-internal", "err-unknown", "err-ansi", "err-reason", "err-mismatch", "err-garbage"]
)
def test_backend_failures_reach_clients_clean(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend, name: str
) -> None:
    for call, request in (
        (hub.GetSession, hub_pb2.GetSessionRequest(server=LIAR, name=name)),
        (hub.SendInput, hub_pb2.SendInputRequest(server=LIAR, name=name, data=b"x")),
        (hub.KillSession, hub_pb2.KillSessionRequest(server=LIAR, name=name)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=RPC_TIMEOUT)
        err: Any = info.value
        code, reason = err.code(), error_reason(err)
        assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), err.details()
        assert reason and re.fullmatch(r"[A-Z][A-Z0-9_]*", reason), (reason, err.details())
        assert_clean_text(err.details() or "")
        for key, value in err.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                status = status_pb2.Status.FromString(value)
                assert status.code == code.value[0]
                assert_clean_text(status.message)
        if name == "err-ansi":
            assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
        else:
            assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "SERVER_UNAVAILABLE")
    assert entry(hub, liar.url).health == HEALTHY
    local_round_trip(hub)


def test_screen_text_with_control_characters_is_refused(
    hub: hub_pb2_grpc.HubServiceStub, liar: FakeBackend
) -> None:
    """A terminal screen never holds escape sequences; one that does is made up."""
    expect(
        lambda: hub.GetScreen(
            hub_pb2.GetScreenRequest(server=LIAR, name="ansi"), timeout=RPC_TIMEOUT
        ),
        grpc.StatusCode.UNAVAILABLE,
        "BACKEND_INVALID",
    )
