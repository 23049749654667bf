"""Property-based fuzzing of every HubService RPC against real server processes.

Random and boundary values (empty, huge, unicode, NUL, control bytes, 0 and
maximal numbers, unknown enum numbers, nonexistent names, names of other
servers) go to one real hub with one real backend behind it. Whatever comes
in, the hub answers OK or a status a client's bad input may produce, each
with an ErrorInfo reason; never UNKNOWN or INTERNAL. Afterwards it still
works and has leaked no process and no descriptor.

Nothing here is ever run as a shell command except a fixed set of harmless
ones, and every address the fuzzer may register that would parse as valid
points at this machine: the hub, its backend, or 127.0.0.1 ports held
closed by the test.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.cluster import server_entry, wait_until
from tests.procs import ServerProc, assert_no_traceback, error_reason
from wsh.errors import WshError
from wsh.federation.address import parse_backend_address
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e

HUB = "fuzzhub"
PEER = "fuzzpeer"
MAX_SESSIONS = 20
RPC_TIMEOUT = 2.0  # every fuzzed call: a long wait ends as the client's DEADLINE_EXCEEDED
WAIT_TIMEOUT = 1.0  # AwaitIdle, RaceIdle and AddServer(wait): usually wait to the end
SETUP_TIMEOUT = 15.0
# Sessions every example may hit, on both servers: name -> (command, tags).
VICTIMS = {"cat-1": ("cat", ()), "cat-2": ("cat", ("t1", "t2"))}

OK = grpc.StatusCode.OK
# What a client's bad input may produce. UNAVAILABLE and PERMISSION_DENIED
# only with these reasons: any other would be a transport failure or a bug.
CLIENT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.CANCELLED,
}
REASONS_ONLY = {
    grpc.StatusCode.UNAVAILABLE: {"SERVER_UNAVAILABLE", "BACKEND_INVALID"},
    grpc.StatusCode.PERMISSION_DENIED: {"IP_NOT_ALLOWED"},
}
# The client's own deadline or cancel carries no ErrorInfo.
NO_REASON_OK = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    # A failure may leave a server unusable for every later example, and
    # each of them costs seconds: report the first failing example as it is.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the servers ----------------------------------------------------------------


@dataclass
class Env:
    hub: ServerProc
    peer: ServerProc
    stub: hub_pb2_grpc.HubServiceStub
    dead_urls: list[str]
    log: Path
    peer_log: Path
    baseline_fds: int
    calls: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self, method: str, code: grpc.StatusCode) -> None:
        per = self.calls.setdefault(method, {})
        per[code.name] = per.get(code.name, 0) + 1


def closed_port() -> socket.socket:
    """A 127.0.0.1 port bound but never listening: dials to it are refused,
    and nothing else can take the port while the socket is held."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def server_info(hub: hub_pb2_grpc.HubServiceStub) -> hub_pb2.GetServerInfoResponse:
    return hub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=SETUP_TIMEOUT)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("fuzz")
    common = ("--max-sessions", str(MAX_SESSIONS), "--exited-retention", "1")
    peer = ServerProc(PEER, *common, "--config", str(tmp / "peer.toml"), log_path=tmp / "peer.log")
    hub = ServerProc(HUB, *common, "--config", str(tmp / "hub.toml"), log_path=tmp / "hub.log")
    dead = [closed_port(), closed_port()]
    channel: grpc.Channel | None = None
    try:
        peer.start()
        hub.start()
        channel = grpc.insecure_channel(
            hub.addr, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        running = Env(
            hub=hub,
            peer=peer,
            stub=hub_pb2_grpc.HubServiceStub(channel),
            dead_urls=[f"http://127.0.0.1:{s.getsockname()[1]}" for s in dead],
            log=tmp / "hub.log",
            peer_log=tmp / "peer.log",
            baseline_fds=0,
        )
        ensure_peer(running)
        running.baseline_fds = server_info(running.stub).stats.open_fds
        tidy(running)
        yield running
        print("fuzzed calls by status:", running.calls)
    finally:
        if channel is not None:
            channel.close()
        for proc in (hub, peer):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()
        for sock in dead:
            sock.close()


def ensure_peer(env: Env) -> None:
    """The peer registered and healthy, every other backend gone."""
    hub = env.stub
    servers = hub.ListServers(hub_pb2.ListServersRequest(), timeout=SETUP_TIMEOUT).servers
    have_peer = False
    for entry in servers[1:]:
        if entry.address == env.peer.url and entry.health != hub_pb2.SERVER_HEALTH_REJECTED:
            have_peer = True
            continue
        hub.RemoveServer(hub_pb2.RemoveServerRequest(address=entry.address), timeout=SETUP_TIMEOUT)
    if not have_peer:
        hub.AddServer(hub_pb2.AddServerRequest(address=env.peer.url), timeout=SETUP_TIMEOUT)

    def healthy() -> bool:
        entry = server_entry(hub, address=env.peer.url)
        assert entry is not None
        # Nothing a client does to the peer's sessions may make the hub refuse it.
        assert entry.health != hub_pb2.SERVER_HEALTH_UNAVAILABLE, entry.last_error
        return entry.health == hub_pb2.SERVER_HEALTH_HEALTHY

    wait_until(healthy, SETUP_TIMEOUT, "the peer to be healthy")


def kill_quietly(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str) -> None:
    try:
        hub.KillSession(hub_pb2.KillSessionRequest(name=name, server=server), timeout=SETUP_TIMEOUT)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
            raise


def tidy(env: Env) -> None:
    """Back to the starting point: the victims running on both servers, nothing else."""
    ensure_peer(env)
    hub = env.stub
    sessions = hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=SETUP_TIMEOUT).sessions
    present = set()
    for session in sessions:
        victim = VICTIMS.get(session.name)
        keep = (
            victim is not None
            and session.state == types_pb2.SESSION_STATE_RUNNING
            and tuple(session.tags) == victim[1]
        )
        if keep:
            present.add((session.server, session.name))
        else:
            kill_quietly(hub, session.name, session.server)
    for server in (HUB, PEER):
        for name, (command, tags) in VICTIMS.items():
            if (server, name) not in present:
                hub.CreateSession(
                    hub_pb2.CreateSessionRequest(
                        server=server, name=name, command=command, tags=tags
                    ),
                    timeout=SETUP_TIMEOUT,
                )


def check_status(env: Env, method: str, err: grpc.RpcError, request: Any) -> None:
    code = err.code()  # type: ignore[attr-defined]
    env.record(method, code)
    what = f"{method} answered {code.name} ({err.details()!r:.300}) to {request!r:.400}"  # type: ignore[attr-defined]
    assert code in CLIENT_CODES, what
    reason = error_reason(err)
    if code not in NO_REASON_OK:
        assert reason, "no ErrorInfo reason: " + what
    if code in REASONS_ONLY:
        assert reason in REASONS_ONLY[code], what


def call(env: Env, method: str, request: Any, timeout: float = RPC_TIMEOUT) -> Any:
    """One fuzzed unary call from the starting point: its response, or None
    after checking its error status."""
    tidy(env)
    try:
        response = getattr(env.stub, method)(request, timeout=timeout)
    except grpc.RpcError as err:
        check_status(env, method, err, request)
        return None
    env.record(method, OK)
    return response


def race(env: Env, request: hub_pb2.RaceIdleRequest) -> list[types_pb2.Idle]:
    """A fuzzed RaceIdle: up to three messages, then cancel."""
    tidy(env)
    stream = env.stub.RaceIdle(request, timeout=WAIT_TIMEOUT)
    got: list[types_pb2.Idle] = []
    try:
        for response in stream:
            got.append(response.idle)
            if len(got) == 3:
                break
    except grpc.RpcError as err:
        check_status(env, "RaceIdle", err, request)
    else:
        env.record("RaceIdle", OK)
    finally:
        stream.cancel()
    return got


@pytest.fixture(autouse=True)
def hub_survives(env: Env) -> Iterator[None]:
    yield
    assert env.hub.proc is not None and env.hub.proc.poll() is None, "the hub died"
    assert env.peer.proc is not None and env.peer.proc.poll() is None, "the peer died"
    tidy(env)
    assert server_info(env.stub).hostname == HUB


# -- strategies -----------------------------------------------------------------

UINT32 = st.one_of(
    st.sampled_from([0, 1, 2, 24, 1000, 1001, 2**31 - 1, 2**31, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)
UINT64 = st.one_of(
    st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
# Proto3 enums are open: any int32 goes on the wire.
FORMATS = st.sampled_from([0, 1, 2, 3, 7, 255, 2**31 - 1, -1, -(2**31)])

CONTROL = st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Zs"])
SPECIAL_TEXT = [
    "",
    " ",
    ".",
    "..",
    "-",
    "-rf",
    "a" * 64,
    "a" * 65,
    "é" * 32,  # 64 UTF-8 bytes
    "é" * 33,
    "日本語",
    "e\u0301",
    "\u202eevil",
    "\u200b",
    "\ufeff",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07",
    "\x9b2J",
    "../../etc/passwd",
    "name with spaces",
    "tab\there",
    "line\nbreak",
    "%s%n%x",
    "'; DROP TABLE sessions; --",
    "\U0001f600",
]
NAMEISH = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)


def repeated(min_len: int, max_len: int) -> st.SearchStrategy[str]:
    """One character many times: long strings without generating each one."""
    return st.builds(
        lambda ch, n: ch * n,
        st.sampled_from(["a", "é", "日", "\x00", "\x1b", "-", "\U0001f600"]),
        st.integers(min_len, max_len),
    )


TEXT = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(max_size=40),
    st.text(CONTROL, min_size=1, max_size=10),
    repeated(65, 70_000),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` about two times in three, so that most requests get past the
    first check and reach the code behind it."""
    # (``one_of`` would give most draws to the branch with the most values.)
    return st.sampled_from([True, True, False]).flatmap(lambda ok: good if ok else bad)


# Mostly a session that exists, so that requests get past the lookup.
NAMES = mostly(st.sampled_from(sorted(VICTIMS)), st.one_of(NAMEISH, TEXT))
TAGS = mostly(
    st.lists(st.one_of(st.sampled_from(["t1", "t2", "t3"]), NAMEISH), max_size=6),
    st.one_of(
        st.lists(st.one_of(NAMEISH, TEXT), min_size=1, max_size=6),
        st.builds(lambda n: [f"t{i}" for i in range(n)], st.sampled_from([64, 65, 1000])),
    ),
)
BAD_SERVERS = st.one_of(
    st.sampled_from(
        ["nonexistent", "x" * 300, HUB.upper(), HUB + ".", " " + HUB, PEER + "\x00", "local"]
    ),
    TEXT,
)
# Mostly a real server, so that requests get past routing.
SERVERS = mostly(st.sampled_from(["", HUB, PEER]), BAD_SERVERS)
ENV = mostly(
    st.dictionaries(NAMEISH, st.text(max_size=20).filter(lambda v: "\x00" not in v), max_size=3),
    st.one_of(
        st.dictionaries(st.one_of(NAMEISH, TEXT, st.just("A=B")), TEXT, min_size=1, max_size=4),
        st.just({"BIG": "x" * 200_000}),
        st.builds(lambda n: {f"V{i}": "v" for i in range(n)}, st.sampled_from([100, 5000])),
    ),
)
# Only these ever run; whatever else the fuzzer makes up is refused before
# a shell sees it, or (when it carries no NUL) wrapped in an `echo`.
SAFE_COMMANDS = [
    "",
    "true",
    "cat",
    "sleep 30",
    "exit 3",
    "printf '\\033[31mred\\033[0m\\n'",
    "printf '\\033[?1049h'",
    "head -c 100000 /dev/zero | tr '\\0' x",
    "/nonexistent/program",
]


def echo_of(text: str) -> str:
    if "\x00" in text:
        return text  # refused as a whole: INVALID_COMMAND
    return "echo '" + text.replace("'", "'\\''") + "'"


COMMANDS = mostly(st.sampled_from(SAFE_COMMANDS), TEXT.map(echo_of))
CWDS = mostly(
    st.sampled_from(["", "/", "/tmp"]),
    st.one_of(st.sampled_from(["/nonexistent", "/etc/passwd", ".", "-C"]), TEXT),
)
MIB = 1024 * 1024
DATA = mostly(
    st.binary(max_size=200),
    st.one_of(
        st.sampled_from(
            [
                b"",
                b"\x00",
                b"\x03",
                b"\x04",
                b"\x1a",
                b"\x1b[6n",
                b"\x1b[?1049h",
                b"\r\n" * 50,
                b"\xff\xfe\xc3(",  # not UTF-8
                ("e" + "\u0301" * 40).encode(),
                ("\U0001f468\u200d\U0001f469\u200d\U0001f467" * 100).encode(),
                ("日本" * 3000).encode(),
                b"\xc2\x9b2J\xc2\x85",  # C1 controls
            ]
        ),
        st.builds(lambda n: b"y" * n, st.sampled_from([MIB - 1, MIB, MIB + 1, 2 * MIB])),
    ),
)


# Mostly short enough to settle within the call's deadline.
QUIET_MS = mostly(st.integers(0, 300), UINT32)


# -- fuzzed RPCs ----------------------------------------------------------------


@FUZZ
@given(
    server=SERVERS,
    name=mostly(st.one_of(st.just(""), NAMEISH), NAMES),
    command=COMMANDS,
    rows=UINT32,
    cols=UINT32,
    cwd=CWDS,
    env_vars=ENV,
    tags=TAGS,
)
def test_create_session(
    env: Env,
    server: str,
    name: str,
    command: str,
    rows: int,
    cols: int,
    cwd: str,
    env_vars: dict[str, str],
    tags: list[str],
) -> None:
    request = hub_pb2.CreateSessionRequest(
        server=server,
        name=name,
        command=command,
        rows=rows,
        cols=cols,
        cwd=cwd,
        env=env_vars,
        tags=tags,
    )
    response = call(env, "CreateSession", request)
    if response is not None:
        session = response.session
        assert session.server in (HUB, PEER) and session.name
        assert 1 <= session.rows <= 1000 and 1 <= session.cols <= 1000
        assert list(session.tags) == sorted(set(tags))
        kill_quietly(env.stub, session.name, session.server)


@FUZZ
@given(server=SERVERS, tags=TAGS)
def test_list_sessions(env: Env, server: str, tags: list[str]) -> None:
    response = call(env, "ListSessions", hub_pb2.ListSessionsRequest(server=server, tags=tags))
    if response is not None:
        for session in response.sessions:
            assert session.server in (HUB, PEER)
            assert not server or session.server == server


@FUZZ
@given(server=SERVERS, name=NAMES)
def test_get_session(env: Env, server: str, name: str) -> None:
    response = call(env, "GetSession", hub_pb2.GetSessionRequest(server=server, name=name))
    if response is not None:
        assert response.session.name == name


@FUZZ
@given(server=SERVERS, name=NAMES, new_name=st.one_of(st.just(""), NAMES), add=TAGS, remove=TAGS)
def test_update_session(
    env: Env, server: str, name: str, new_name: str, add: list[str], remove: list[str]
) -> None:
    request = hub_pb2.UpdateSessionRequest(
        server=server, name=name, new_name=new_name, add_tags=add, remove_tags=remove
    )
    response = call(env, "UpdateSession", request)
    if response is not None:
        assert response.session.name == (new_name or name)


@FUZZ
@given(server=SERVERS, name=NAMES)
def test_kill_session(env: Env, server: str, name: str) -> None:
    call(env, "KillSession", hub_pb2.KillSessionRequest(server=server, name=name))


@FUZZ
@given(server=SERVERS, name=NAMES, data=DATA)
def test_send_input(env: Env, server: str, name: str, data: bytes) -> None:
    response = call(env, "SendInput", hub_pb2.SendInputRequest(server=server, name=name, data=data))
    if len(data) > MIB:
        assert response is None


@FUZZ
@given(server=SERVERS, name=NAMES, fmt=FORMATS)
def test_get_screen(env: Env, server: str, name: str, fmt: int) -> None:
    response = call(
        env, "GetScreen", hub_pb2.GetScreenRequest(server=server, name=name, format=fmt)
    )
    if response is not None:
        screen = response.screen
        assert len(screen.lines) <= screen.rows and len(screen.styled_lines) <= screen.rows


@FUZZ
@given(server=SERVERS, name=NAMES, offset=UINT32, limit=UINT32, fmt=FORMATS)
def test_get_scrollback(
    env: Env, server: str, name: str, offset: int, limit: int, fmt: int
) -> None:
    request = hub_pb2.GetScrollbackRequest(
        server=server, name=name, offset=offset, limit=limit, format=fmt
    )
    response = call(env, "GetScrollback", request)
    if response is not None:
        assert len(response.lines) <= 10_000 and len(response.styled_lines) <= 10_000


@FUZZ
@given(server=SERVERS, name=NAMES, rows=UINT32, cols=UINT32)
def test_resize_session(env: Env, server: str, name: str, rows: int, cols: int) -> None:
    request = hub_pb2.ResizeSessionRequest(server=server, name=name, rows=rows, cols=cols)
    response = call(env, "ResizeSession", request)
    if response is not None:
        assert 1 <= response.session.rows <= 1000 and 1 <= response.session.cols <= 1000


@FUZZ
@given(
    server=SERVERS,
    name=NAMES,
    timeout_ms=QUIET_MS,
    max_wait_ms=UINT32,
    last=st.one_of(st.none(), UINT64),
    fresh=st.booleans(),
    fmt=FORMATS,
)
def test_await_idle(
    env: Env,
    server: str,
    name: str,
    timeout_ms: int,
    max_wait_ms: int,
    last: int | None,
    fresh: bool,
    fmt: int,
) -> None:
    request = hub_pb2.AwaitIdleRequest(
        server=server,
        name=name,
        timeout_ms=timeout_ms,
        max_wait_ms=max_wait_ms,
        last_generation=last,
        fresh=fresh,
        format=fmt,
    )
    response = call(env, "AwaitIdle", request, timeout=WAIT_TIMEOUT)
    if response is not None:
        assert response.idle.session == name and response.idle.server in (HUB, PEER)


@FUZZ
@given(
    server=SERVERS,
    tags=TAGS,
    timeout_ms=QUIET_MS,
    max_wait_ms=UINT32,
    last_session=st.one_of(st.just(""), NAMES),
    last_server=SERVERS,
    last=st.one_of(st.none(), UINT64),
    fresh=st.booleans(),
    fmt=FORMATS,
)
def test_race_idle(
    env: Env,
    server: str,
    tags: list[str],
    timeout_ms: int,
    max_wait_ms: int,
    last_session: str,
    last_server: str,
    last: int | None,
    fresh: bool,
    fmt: int,
) -> None:
    request = hub_pb2.RaceIdleRequest(
        server=server,
        tags=tags,
        timeout_ms=timeout_ms,
        max_wait_ms=max_wait_ms,
        last_session=last_session,
        last_server=last_server,
        last_generation=last,
        fresh=fresh,
        format=fmt,
    )
    for idle in race(env, request):
        assert idle.server in (HUB, PEER) and idle.session


# -- server management ----------------------------------------------------------


def dialable_safely(env: Env, address: str) -> bool:
    """Whether the hub could dial ``address`` without leaving this test's
    sockets: it must not parse, or lead to a closed port, the hub or the peer."""
    try:
        parsed = parse_backend_address(address)
    except WshError:
        return True
    own = {env.hub.addr, env.peer.addr}
    closed = {parse_backend_address(url).grpc_target for url in env.dead_urls}
    return parsed.host == "127.0.0.1" and parsed.grpc_target in own | closed


def addresses(env: Env) -> st.SearchStrategy[str]:
    hub_port = env.hub.addr.rsplit(":", 1)[1]
    peer_port = env.peer.addr.rsplit(":", 1)[1]
    known = [
        *env.dead_urls,
        env.hub.url,  # self-loop: REJECTED
        env.peer.url,  # already registered
        env.peer.url + "/",
        f"http://localhost:{peer_port}",  # the peer under a second name: HOSTNAME_TAKEN
        f"http://localhost:{hub_port}",
        f"https://127.0.0.1:{peer_port}",  # TLS to a plaintext server
        env.dead_urls[0] + "/some/prefix",
        env.dead_urls[0].replace("http", "HTTP"),
        env.dead_urls[0] + "/../x",
        env.dead_urls[0] + "?q=1",
        "http://user:pw@127.0.0.1:1",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:-1",
        "http://[::1",
        "http://0.0.0.0:7600",
        "http://[::]:7600",
        "http://0x7f.1:7600",
        "http://ex\x00ample:1",
        "http://\x1b[31m:1",
        "ftp://127.0.0.1:1",
        "unix:/tmp/x.sock",
        "127.0.0.1:7600",
        "http://",
        "",
    ]
    prefixed = st.builds(
        lambda scheme, rest: scheme + rest, st.sampled_from(["http://", "https://"]), TEXT
    )
    with_port = st.builds(lambda base, suffix: base + suffix, st.sampled_from(env.dead_urls), TEXT)
    return mostly(st.sampled_from(known), st.one_of(prefixed, with_port, TEXT)).filter(
        lambda address: dialable_safely(env, address)
    )


@dataclass
class Adds:
    address: str
    token: str | None
    wait: bool
    wait_timeout_ms: int


@st.composite
def add_requests(draw: Callable[..., Any], env: Env) -> Adds:
    return Adds(
        address=draw(addresses(env)),
        token=draw(st.one_of(st.none(), TEXT)),
        wait=draw(st.booleans()),
        wait_timeout_ms=draw(UINT32),
    )


def test_add_server(env: Env) -> None:
    @FUZZ
    @given(add=add_requests(env))
    def fuzz(add: Adds) -> None:
        request = hub_pb2.AddServerRequest(
            address=add.address, wait=add.wait, wait_timeout_ms=add.wait_timeout_ms
        )
        if add.token is not None:
            request.token = add.token
        response = call(env, "AddServer", request, timeout=WAIT_TIMEOUT)
        if response is not None:
            assert response.server.address == parse_backend_address(add.address).url
            if add.token:
                # One that no header could carry is refused up front.
                assert re.fullmatch(r"[\x21-\x7e]+", add.token), add.token
                if len(add.token) >= 16:
                    assert add.token not in str(response)
        ensure_peer(env)

    fuzz()


@FUZZ
@given(hostname=st.one_of(SERVERS, NAMES), address=st.one_of(st.just(""), TEXT))
def test_remove_server(env: Env, hostname: str, address: str) -> None:
    call(env, "RemoveServer", hub_pb2.RemoveServerRequest(hostname=hostname, address=address))
    ensure_peer(env)


@FUZZ
@given(hostname=st.one_of(SERVERS, NAMES))
def test_get_server(env: Env, hostname: str) -> None:
    response = call(env, "GetServer", hub_pb2.GetServerRequest(hostname=hostname))
    if response is not None:
        assert response.server.hostname in (HUB, PEER)


@settings(FUZZ, max_examples=10)
@given(st.integers(0, 3))
def test_reload_list_and_info(env: Env, _: int) -> None:
    assert call(env, "ReloadConfig", hub_pb2.ReloadConfigRequest()) is not None
    servers = call(env, "ListServers", hub_pb2.ListServersRequest())
    assert servers is not None and servers.servers[0].hostname == HUB
    assert call(env, "GetServerInfo", hub_pb2.GetServerInfoRequest()) is not None


# -- afterwards -----------------------------------------------------------------


def test_still_usable_and_nothing_leaked(env: Env) -> None:
    hub = env.stub
    for server in (HUB, PEER):
        hub.CreateSession(
            hub_pb2.CreateSessionRequest(
                server=server, name="after", command="bash --norc --noprofile"
            ),
            timeout=SETUP_TIMEOUT,
        )
        sent = hub.SendInput(
            hub_pb2.SendInputRequest(server=server, name="after", data=b"echo ok-$((40+2))\n"),
            timeout=SETUP_TIMEOUT,
        )
        hub.AwaitIdle(
            hub_pb2.AwaitIdleRequest(
                server=server,
                name="after",
                timeout_ms=300,
                max_wait_ms=10_000,
                last_generation=sent.generation,
            ),
            timeout=SETUP_TIMEOUT,
        )
        screen = hub.GetScreen(
            hub_pb2.GetScreenRequest(server=server, name="after"), timeout=SETUP_TIMEOUT
        ).screen
        assert "ok-42" in screen.lines, screen.lines
    for session in hub.ListSessions(hub_pb2.ListSessionsRequest(), timeout=SETUP_TIMEOUT).sessions:
        kill_quietly(hub, session.name, session.server)

    def settled() -> bool:
        stats = server_info(hub).stats
        return stats.sessions == 0 and stats.child_processes == 0 and stats.races == 0

    wait_until(settled, 10, "the hub to have no session, child or race left")
    stats = server_info(hub).stats
    # The channel to the peer and its Link stay open; everything else is gone.
    assert stats.open_fds <= env.baseline_fds + 8, (stats.open_fds, env.baseline_fds)
    with grpc.insecure_channel(env.peer.addr) as channel:
        peer = hub_pb2_grpc.HubServiceStub(channel)
        wait_until(lambda: server_info(peer).stats.child_processes == 0, 10, "the peer to reap all")
    for log in (env.log, env.peer_log):
        assert_no_traceback(log.read_text(errors="replace"))
