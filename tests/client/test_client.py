"""Unit tests of the SDK against tiny in-process gRPC servers; no wsh server needed."""

from __future__ import annotations

import asyncio
import inspect
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from wsh import client as sdk
from wsh.client import AsyncClient, Client, WshRpcError, _aio_io, _sync_io
from wsh.client._address import Endpoint, parse_addr
from wsh.defaults import DEFAULT_ADDR
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

Ctx = grpc.aio.ServicerContext[Any, Any]
WAIT = 5.0  # seconds: bound on every wait, so a broken test fails instead of hanging


def rich_status(
    code: grpc.StatusCode, reason: str, message: str, **metadata: str
) -> status_pb2.Status:
    """A google.rpc.Status with one ErrorInfo detail, as wsh servers send."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="wsh.v1", metadata=metadata))
    return status_pb2.Status(code=code.value[0], message=message, details=[detail])


def idle(session: str, generation: int) -> types_pb2.Idle:
    screen = types_pb2.Screen(rows=2, cols=10, lines=[f"{session}$"], generation=generation)
    return types_pb2.Idle(session=session, server="h1", generation=generation, screen=screen)


# --- A tiny HubService --------------------------------------------------------


@dataclass
class FakeHub(hub_pb2_grpc.HubServiceServicer):
    """Answers a few RPCs, records what it was sent."""

    metadata: list[dict[str, str]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    race_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def _record(self, request: Any, context: Ctx) -> None:
        self.requests.append(request)
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})

    async def GetSession(
        self, request: hub_pb2.GetSessionRequest, context: Ctx
    ) -> hub_pb2.GetSessionResponse:
        self._record(request, context)
        if request.name == "slow":
            await asyncio.sleep(30)
        if request.name in ("build", "busy"):
            # "build" waits at its prompt, "busy" runs something.
            found = types_pb2.Session(name=request.name, ready=request.name == "build")
            return hub_pb2.GetSessionResponse(session=found)
        status = rpc_status.to_status(
            rich_status(
                grpc.StatusCode.NOT_FOUND,
                "SESSION_NOT_FOUND",
                f"Session {request.name!r} not found.",
                session=request.name,
            )
        )
        await context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("abort raises")

    async def ListSessions(
        self, request: hub_pb2.ListSessionsRequest, context: Ctx
    ) -> hub_pb2.ListSessionsResponse:
        self._record(request, context)
        sessions = [types_pb2.Session(name=tag, server="h1", tags=[tag]) for tag in request.tags]
        return hub_pb2.ListSessionsResponse(sessions=sessions)

    async def SendInput(
        self, request: hub_pb2.SendInputRequest, context: Ctx
    ) -> hub_pb2.SendInputResponse:
        self._record(request, context)
        return hub_pb2.SendInputResponse(generation=41)

    async def AwaitIdle(
        self, request: hub_pb2.AwaitIdleRequest, context: Ctx
    ) -> hub_pb2.AwaitIdleResponse:
        self._record(request, context)
        after = request.last_generation if request.HasField("last_generation") else 0
        return hub_pb2.AwaitIdleResponse(idle=idle(request.name, after + 1))

    async def RaceIdle(
        self, request: hub_pb2.RaceIdleRequest, context: Ctx
    ) -> AsyncIterator[hub_pb2.RaceIdleResponse]:
        self._record(request, context)
        if "none" in request.tags:
            await context.abort(grpc.StatusCode.NOT_FOUND, "No sessions in scope.")
        try:
            for n, name in enumerate(("a", "b", "c")):
                yield hub_pb2.RaceIdleResponse(idle=idle(name, n + 1))
            if "hold" in request.tags:
                await asyncio.sleep(30)
        finally:
            # Reached early only when the client cancels: while held, nothing
            # else ends the stream for 30 s.
            self.race_closed.set()


class MethodRecorder(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Sees every call's method path first; handles none of them."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> None:
        self.methods.append(handler_call_details.method)


@dataclass
class Served:
    hub: FakeHub
    recorder: MethodRecorder
    addr: str


async def serve(
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, Served]:
    hub, recorder = FakeHub(), MethodRecorder()
    server = grpc.aio.server(handlers=[recorder])
    hub_pb2_grpc.add_HubServiceServicer_to_server(hub, server)  # type: ignore[no-untyped-call]
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, Served(hub, recorder, f"127.0.0.1:{port}")


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    server, info = await serve()
    yield info
    await server.stop(0)


# --- Shape of the API ---------------------------------------------------------


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


RPCS = [m.name for m in hub_pb2.DESCRIPTOR.services_by_name["HubService"].methods]


@pytest.mark.parametrize("rpc", RPCS)
def test_each_rpc_has_a_method_on_both_clients(rpc: str) -> None:
    sync_method = getattr(Client, snake(rpc))
    async_method = getattr(AsyncClient, snake(rpc))
    assert not inspect.iscoroutinefunction(sync_method)
    # Server streams and Attach return async iterators, not coroutines.
    streams = ("RaceIdle", "WatchSessions", "Attach")
    assert inspect.iscoroutinefunction(async_method) == (rpc not in streams)
    assert inspect.signature(sync_method).parameters == inspect.signature(async_method).parameters


def test_session_methods_take_server() -> None:
    for rpc in RPCS:
        request = getattr(hub_pb2, f"{rpc}Request")
        if "server" in request.DESCRIPTOR.fields_by_name:
            params = inspect.signature(getattr(Client, snake(rpc))).parameters
            assert params["server"].default == "", rpc
            assert params["server"].kind == inspect.Parameter.KEYWORD_ONLY, rpc


# --- Addresses, tokens, TLS options ---------------------------------------------


@pytest.mark.parametrize(
    ("addr", "target", "tls", "prefix"),
    [
        ("127.0.0.1:7600", "127.0.0.1:7600", None, ""),
        ("localhost", "localhost:7600", None, ""),
        ("http://h:8080", "h:8080", False, ""),
        ("http://h", "h:80", False, ""),
        ("HTTPS://h", "h:443", True, ""),
        ("https://proxy.example.com/wsh-node-1/", "proxy.example.com:443", True, "/wsh-node-1"),
        ("[::1]:7600", "[::1]:7600", None, ""),
        ("http://[::1]", "[::1]:80", False, ""),
    ],
)
def test_parse_addr(addr: str, target: str, tls: bool | None, prefix: str) -> None:
    assert parse_addr(addr) == Endpoint(target, tls, prefix)


@pytest.mark.parametrize(
    "addr", ["ftp://h:1", "h:notaport", "h:99999", "", "http://", "http://u:p@h:1", "h:1?x=1"]
)
def test_parse_addr_rejects(addr: str) -> None:
    with pytest.raises(ValueError):
        parse_addr(addr)


def test_addr_and_token_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSH_ADDR", raising=False)
    monkeypatch.delenv("WSH_TOKEN", raising=False)
    with Client() as plain:
        assert plain.addr == DEFAULT_ADDR
        assert plain._metadata is None
        assert not plain.secure
    monkeypatch.setenv("WSH_ADDR", "http://10.1.2.3:9")
    monkeypatch.setenv("WSH_TOKEN", "from-env")
    with Client() as from_env:
        assert from_env.addr == "http://10.1.2.3:9"
        assert from_env._metadata == (("authorization", "Bearer from-env"),)
    with Client(token="") as no_token:
        assert no_token._metadata is None


def test_token_never_in_repr() -> None:
    with Client("h:1", token="hunter2-secret") as c:
        assert "hunter2" not in repr(c)


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(f"{name}-bytes".encode())
        paths[name] = str(path)
    return paths


@dataclass
class Recorded:
    credentials: list[dict[str, bytes | None]] = field(default_factory=list)
    secure_targets: list[str] = field(default_factory=list)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """Record what the sync client hands grpc for TLS, without connecting."""
    seen = Recorded()
    real = grpc.ssl_channel_credentials

    def credentials(**kwargs: bytes | None) -> grpc.ChannelCredentials:
        seen.credentials.append(kwargs)
        return real()

    def secure_channel(target: str, creds: grpc.ChannelCredentials, **kw: Any) -> grpc.Channel:
        seen.secure_targets.append(target)
        return grpc.insecure_channel(target)

    monkeypatch.setattr(grpc, "ssl_channel_credentials", credentials)
    monkeypatch.setattr(grpc, "secure_channel", secure_channel)
    return seen


def test_https_builds_a_secure_channel(recorded: Recorded) -> None:
    with Client("https://wsh.example.com") as c:
        assert c.secure
    assert recorded.secure_targets == ["wsh.example.com:443"]
    assert recorded.credentials == [
        {"root_certificates": None, "private_key": None, "certificate_chain": None}
    ]


def test_tls_files_are_read_into_credentials(recorded: Recorded, pem_files: dict[str, str]) -> None:
    with Client(
        "h:7600",
        ca_file=pem_files["ca"],
        client_cert=pem_files["cert"],
        client_key=pem_files["key"],
    ) as c:
        assert c.secure
    assert recorded.secure_targets == ["h:7600"]
    assert recorded.credentials == [
        {
            "root_certificates": b"ca-bytes",
            "private_key": b"key-bytes",
            "certificate_chain": b"cert-bytes",
        }
    ]


def test_tls_flag_on_bare_address(recorded: Recorded) -> None:
    with Client("h:1", tls=True) as c:
        assert c.secure
    assert recorded.secure_targets == ["h:1"]


def test_plaintext_by_default(recorded: Recorded) -> None:
    with Client("http://h:1") as c:
        assert not c.secure
    assert recorded.secure_targets == []


def test_contradictory_tls_options(pem_files: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="plaintext"):
        Client("http://h:1", ca_file=pem_files["ca"])
    with pytest.raises(ValueError, match="together"):
        Client("h:1", client_cert=pem_files["cert"])


def test_missing_ca_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Client("h:1", ca_file=str(tmp_path / "absent.pem"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", types_pb2.SCREEN_FORMAT_PLAIN),
        ("Styled", types_pb2.SCREEN_FORMAT_STYLED),
        (types_pb2.SCREEN_FORMAT_STYLED, types_pb2.SCREEN_FORMAT_STYLED),
    ],
)
def test_screen_format(value: sdk.ScreenFormatArg, expected: int) -> None:
    assert sdk.screen_format(value) == expected


def test_screen_format_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="bold"):
        sdk.screen_format("bold")


# --- Error parsing ------------------------------------------------------------


class CallError(grpc.RpcError, grpc.Call):
    """A finished failed call, as the sync client raises it."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: Any) -> None:
        self._code, self._details, self._trailing = code, details, trailing_metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing


STATUS = rich_status(
    grpc.StatusCode.ALREADY_EXISTS, "SESSION_NAME_TAKEN", "Name 'a' is taken.", session="a"
)


def check_error(err: WshRpcError) -> None:
    assert err.code == grpc.StatusCode.ALREADY_EXISTS
    assert err.reason == "SESSION_NAME_TAKEN"
    assert err.message == "Name 'a' is taken."
    assert err.metadata == {"session": "a"}
    assert str(err) == "SESSION_NAME_TAKEN: Name 'a' is taken."


def test_sync_error_parses_error_info() -> None:
    status = rpc_status.to_status(STATUS)
    exc = CallError(status.code, status.details, status.trailing_metadata)
    check_error(_sync_io.rpc_error(exc))


def test_aio_error_parses_error_info() -> None:
    status = rpc_status.to_status(STATUS)
    exc = grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
        None,
    )
    check_error(_aio_io.rpc_error(exc))


def test_error_without_details_uses_the_code_name() -> None:
    exc = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down", None
    )
    err = _aio_io.rpc_error(exc)
    assert (err.reason, err.metadata, str(err)) == ("", {}, "UNAVAILABLE: down")


def test_inconsistent_status_proto_keeps_the_call_status() -> None:
    status = rpc_status.to_status(STATUS)
    # The status proto says ALREADY_EXISTS; the call itself ended INTERNAL.
    err = _sync_io.rpc_error(CallError(grpc.StatusCode.INTERNAL, "boom", status.trailing_metadata))
    assert (err.code, err.reason, err.message) == (grpc.StatusCode.INTERNAL, "", "boom")


# --- Against a real gRPC server -----------------------------------------------


async def in_thread(call: Callable[[], Any]) -> Any:
    """Run a blocking client call off the loop that serves it."""
    return await asyncio.wait_for(asyncio.to_thread(call), WAIT)


async def test_sync_client_raises_wsh_rpc_error(served: Served) -> None:
    with Client(served.addr) as c, pytest.raises(WshRpcError) as caught:
        await in_thread(lambda: c.get_session("nope"))
    err = caught.value
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.reason == "SESSION_NOT_FOUND"
    assert err.metadata == {"session": "nope"}
    assert str(err) == "SESSION_NOT_FOUND: Session 'nope' not found."


async def test_async_client_raises_wsh_rpc_error(served: Served) -> None:
    async with AsyncClient(served.addr) as c:
        with pytest.raises(WshRpcError) as caught:
            await asyncio.wait_for(c.get_session("nope"), WAIT)
    err = caught.value
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.reason == "SESSION_NOT_FOUND"
    assert err.metadata == {"session": "nope"}


async def test_bearer_token_reaches_the_server(served: Served) -> None:
    with Client(served.addr, token="sync-token") as c:
        await in_thread(lambda: c.list_sessions(tags=["x"]))
    async with AsyncClient(served.addr, token="async-token") as ac:
        await asyncio.wait_for(ac.list_sessions(tags=["y"]), WAIT)
    assert [m.get("authorization") for m in served.hub.metadata] == [
        "Bearer sync-token",
        "Bearer async-token",
    ]


async def test_no_token_no_authorization_header(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WSH_TOKEN", raising=False)
    async with AsyncClient(served.addr) as ac:
        await asyncio.wait_for(ac.list_sessions(), WAIT)
    assert "authorization" not in served.hub.metadata[0]


async def test_results_are_unwrapped(served: Served) -> None:
    async with AsyncClient(served.addr) as ac:
        sessions = await asyncio.wait_for(ac.list_sessions(tags=["a", "b"]), WAIT)
    assert isinstance(sessions, list)
    assert [s.name for s in sessions] == ["a", "b"]
    assert served.hub.requests[0].tags == ["a", "b"]


async def test_run_waits_past_the_inputs_generation(served: Served) -> None:
    with Client(served.addr) as c:
        result = await in_thread(lambda: c.run("build", "make\n", 250, max_wait_ms=900))
    asked, send, wait = served.hub.requests
    assert asked.name == "build"
    assert send.data == b"make\n"
    assert wait.last_generation == 41  # what SendInput returned
    assert (wait.timeout_ms, wait.max_wait_ms) == (250, 900)
    # Its foreground waited for input before the text was sent: READY.
    assert wait.mode == hub_pb2.IDLE_MODE_READY
    assert result.generation == 42

    async with AsyncClient(served.addr) as ac:
        result = await asyncio.wait_for(ac.run("build", b"\x03", mode="quiet"), WAIT)
    # A mode given: no question first.
    assert served.hub.requests[3].data == b"\x03"
    assert served.hub.requests[4].last_generation == 41
    assert served.hub.requests[4].mode == hub_pb2.IDLE_MODE_QUIET
    assert result.session == "build"

    async with AsyncClient(served.addr) as ac:
        await asyncio.wait_for(ac.run("busy", b"x"), WAIT)
    assert served.hub.requests[-1].mode == hub_pb2.IDLE_MODE_QUIET
    with pytest.raises(ValueError, match="unknown idle mode"):
        async with AsyncClient(served.addr) as ac:
            await ac.await_idle("build", mode="soon")


async def test_optional_last_generation_is_left_unset(served: Served) -> None:
    async with AsyncClient(served.addr) as ac:
        await asyncio.wait_for(ac.await_idle("s"), WAIT)
        await asyncio.wait_for(ac.await_idle("s", last_generation=0), WAIT)
    unset, zero = served.hub.requests
    assert not unset.HasField("last_generation")
    assert zero.HasField("last_generation")


async def test_deadline_is_honoured(served: Served) -> None:
    with Client(served.addr, timeout=0.2) as c, pytest.raises(WshRpcError) as sync_caught:
        await in_thread(lambda: c.get_session("slow"))
    async with AsyncClient(served.addr) as ac:
        with pytest.raises(WshRpcError) as async_caught:
            await asyncio.wait_for(ac.get_session("slow", timeout=0.2), WAIT)
    for caught in (sync_caught, async_caught):
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert caught.value.reason == ""


async def test_sync_race_streams_then_ends(served: Served) -> None:
    with Client(served.addr) as c:
        names = await in_thread(lambda: [i.session for i in c.race_idle(tags=["t"])])
    assert names == ["a", "b", "c"]


async def test_async_race_streams_then_ends(served: Served) -> None:
    async with AsyncClient(served.addr) as ac:

        async def collect() -> list[str]:
            return [i.session async for i in ac.race_idle(tags=["t"], last_generation=3)]

        assert await asyncio.wait_for(collect(), WAIT) == ["a", "b", "c"]
    assert served.hub.requests[0].last_generation == 3


async def test_sync_race_first_cancels_the_stream(served: Served) -> None:
    with Client(served.addr) as c:
        first = await in_thread(lambda: c.race_first(tags=["hold"]))
        assert first.session == "a"
        await asyncio.wait_for(served.hub.race_closed.wait(), WAIT)


async def test_sync_race_stream_cancels_on_leaving_with(served: Served) -> None:
    with Client(served.addr) as c:

        def first_then_leave() -> tuple[sdk.IdleStream, types_pb2.Idle]:
            with c.race_idle(tags=["hold"]) as stream:
                first = next(stream)
            # Still referenced, so only cancel() can have ended the call.
            return stream, first

        stream, first = await in_thread(first_then_leave)
        assert first.session == "a"
        await asyncio.wait_for(served.hub.race_closed.wait(), WAIT)
        del stream


async def test_async_race_first_cancels_the_stream(served: Served) -> None:
    async with AsyncClient(served.addr) as ac:
        first = await asyncio.wait_for(ac.race_first(tags=["hold"]), WAIT)
        assert first.session == "a"
        await asyncio.wait_for(served.hub.race_closed.wait(), WAIT)


async def test_race_errors_are_wsh_rpc_errors(served: Served) -> None:
    with Client(served.addr) as c, pytest.raises(WshRpcError) as sync_caught:
        await in_thread(lambda: c.race_first(tags=["none"]))
    async with AsyncClient(served.addr) as ac:
        with pytest.raises(WshRpcError) as async_caught:
            await asyncio.wait_for(ac.race_first(tags=["none"]), WAIT)
    for caught in (sync_caught, async_caught):
        assert caught.value.code == grpc.StatusCode.NOT_FOUND


async def test_path_prefix_is_sent_in_the_method(served: Served) -> None:
    async with AsyncClient(f"http://{served.addr}/node-1") as ac:
        with pytest.raises(WshRpcError) as caught:
            await asyncio.wait_for(ac.get_server_info(), WAIT)
    assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED
    assert "/node-1/wsh.v1.HubService/GetServerInfo" in served.recorder.methods


async def test_connection_refused_is_unavailable(unused_tcp_port: int) -> None:
    async with AsyncClient(f"127.0.0.1:{unused_tcp_port}") as ac:
        with pytest.raises(WshRpcError) as caught:
            await asyncio.wait_for(ac.list_servers(), WAIT)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


# --- Real TLS -------------------------------------------------------------------


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for localhost/127.0.0.1 and its key, made by openssl."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@needs_openssl
async def test_tls_with_ca_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "server")
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    server, info = await serve(credentials)
    try:
        port = info.addr.rsplit(":", 1)[1]
        async with AsyncClient(f"https://localhost:{port}", ca_file=str(cert), token="t") as ac:
            await asyncio.wait_for(ac.list_sessions(), WAIT)
        with Client(f"localhost:{port}", ca_file=str(cert)) as c:
            await in_thread(c.list_sessions)
        assert info.hub.metadata[0]["authorization"] == "Bearer t"
        # Plaintext cannot talk to a TLS port.
        async with AsyncClient(f"http://localhost:{port}") as plain:
            with pytest.raises(WshRpcError):
                await asyncio.wait_for(plain.list_sessions(timeout=2), WAIT)
    finally:
        await server.stop(0)


@needs_openssl
async def test_mutual_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_cert.read_bytes(),
        require_client_auth=True,
    )
    server, info = await serve(credentials)
    try:
        addr = f"https://localhost:{info.addr.rsplit(':', 1)[1]}"
        async with AsyncClient(
            addr, ca_file=str(cert), client_cert=str(client_cert), client_key=str(client_key)
        ) as ac:
            await asyncio.wait_for(ac.list_sessions(), WAIT)
        async with AsyncClient(addr, ca_file=str(cert)) as anonymous:
            with pytest.raises(WshRpcError):
                await asyncio.wait_for(anonymous.list_sessions(timeout=2), WAIT)
    finally:
        await server.stop(0)


async def test_race_exclude_takes_idles_tuples_and_messages(served: Served) -> None:
    collected = idle("a", 7)
    given = hub_pb2.RaceExclusion(server="h2", session="c", generation=9)
    with Client(served.addr) as c:
        await in_thread(lambda: c.race_first(tags=["t"], exclude=[collected, ("", "b", 4), given]))
    async with AsyncClient(served.addr) as ac:
        await asyncio.wait_for(ac.race_first(tags=["t"], exclude=iter([("h3", "d", 2)])), WAIT)
    sync_request, async_request = served.hub.requests
    assert list(sync_request.exclude) == [
        hub_pb2.RaceExclusion(server="h1", session="a", generation=7),
        hub_pb2.RaceExclusion(server="", session="b", generation=4),
        given,
    ]
    assert list(async_request.exclude) == [
        hub_pb2.RaceExclusion(server="h3", session="d", generation=2)
    ]


@pytest.mark.parametrize("bad", [("a", 1), "a", types_pb2.Session(name="a"), ("h", "a", "1")])
async def test_race_exclude_of_another_shape_is_a_type_error(served: Served, bad: Any) -> None:
    with Client(served.addr) as c, pytest.raises(TypeError):
        c.race_idle(exclude=[bad])
    assert served.hub.requests == []
