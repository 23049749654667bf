"""End-to-end federation: proxies, TLS, tokens, ip_access, refusals, config files.

Every server is a real ``wsh server`` process on loopback, the proxy a real
nginx, the certificates real ones made with the ``openssl`` command.
"""

from __future__ import annotations

import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.calls import expect_error
from tests.cluster import RPC_TIMEOUT, server_entry, wait_health, wait_until
from tests.nginx import NGINX, Nginx
from tests.procs import REPO, ServerProc, stub
from wsh.v1 import hub_pb2, hub_pb2_grpc, types_pb2

pytestmark = pytest.mark.e2e

HEALTHY = hub_pb2.SERVER_HEALTH_HEALTHY
UNAVAILABLE = hub_pb2.SERVER_HEALTH_UNAVAILABLE
REJECTED = hub_pb2.SERVER_HEALTH_REJECTED
CHATTY = "while :; do echo x; sleep 0.05; done"
# Tokens of the token-protected backend; random so a leak cannot match by chance.
# It refuses a peer IP after 10 failed authentications in 30 s (every hub
# here is 127.0.0.1): the tests below fail there only a handful of times.
RIGHT_TOKEN = "right-" + secrets.token_hex(12)
WRONG_TOKEN = "wrong-" + secrets.token_hex(12)
HUB_COMMENT = "# federation e2e hub: this comment must survive write-back"


# --- Helpers -----------------------------------------------------------------


def add(
    hub: hub_pb2_grpc.HubServiceStub,
    address: str,
    token: str | None = None,
    *,
    wait: bool = True,
    metadata: tuple[tuple[str, str], ...] = (),
) -> hub_pb2.Server:
    req = hub_pb2.AddServerRequest(address=address, wait=wait, wait_timeout_ms=10_000)
    if token is not None:
        req.token = token
    return hub.AddServer(req, timeout=RPC_TIMEOUT, metadata=metadata).server


def remove(hub: hub_pb2_grpc.HubServiceStub, address: str) -> None:
    hub.RemoveServer(hub_pb2.RemoveServerRequest(address=address), timeout=RPC_TIMEOUT)


def servers(
    hub: hub_pb2_grpc.HubServiceStub, metadata: tuple[tuple[str, str], ...] = ()
) -> list[hub_pb2.Server]:
    return list(
        hub.ListServers(
            hub_pb2.ListServersRequest(), timeout=RPC_TIMEOUT, metadata=metadata
        ).servers
    )


def addresses(hub: hub_pb2_grpc.HubServiceStub) -> list[str]:
    return [s.address for s in servers(hub)]


def sessions_of(hub: hub_pb2_grpc.HubServiceStub, server: str = "") -> list[tuple[str, str]]:
    resp = hub.ListSessions(hub_pb2.ListSessionsRequest(server=server), timeout=RPC_TIMEOUT)
    return sorted((s.name, s.server) for s in resp.sessions)


def create(
    hub: hub_pb2_grpc.HubServiceStub,
    name: str,
    server: str,
    command: str = "echo ready; exec cat",
    **kw: object,
) -> types_pb2.Session:
    req = hub_pb2.CreateSessionRequest(name=name, server=server, command=command, **kw)  # type: ignore[arg-type]
    return hub.CreateSession(req, timeout=RPC_TIMEOUT).session


def kill(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str) -> None:
    hub.KillSession(hub_pb2.KillSessionRequest(name=name, server=server), timeout=RPC_TIMEOUT)


def round_trip(hub: hub_pb2_grpc.HubServiceStub, name: str, server: str) -> None:
    """The agent loop through the hub: create, send, await idle, read the screen."""
    session = create(hub, name, server, command="bash --norc --noprofile")
    assert session.server == server
    sent = hub.SendInput(
        hub_pb2.SendInputRequest(name=name, server=server, data=b"echo $((6*7)) via-$0\n"),
        timeout=RPC_TIMEOUT,
    )
    idle = hub.AwaitIdle(
        hub_pb2.AwaitIdleRequest(
            name=name,
            server=server,
            timeout_ms=300,
            max_wait_ms=20_000,
            last_generation=sent.generation,
        ),
        timeout=30,
    ).idle
    assert (idle.session, idle.server) == (name, server)
    assert idle.generation >= sent.generation
    screen = hub.GetScreen(
        hub_pb2.GetScreenRequest(name=name, server=server), timeout=RPC_TIMEOUT
    ).screen
    assert "42 via-bash" in screen.lines, screen.lines
    kill(hub, name, server)


def wait_failing(
    hub: hub_pb2_grpc.HubServiceStub, address: str, *words: str, timeout: float = 15.0
) -> hub_pb2.Server:
    """Wait until the backend at ``address`` is UNAVAILABLE with a ``last_error``
    that contains one of ``words`` (any case). On a loaded machine a first
    attempt may fail for another reason (a slow handshake) before the expected one."""
    seen: list[hub_pb2.Server | None] = [None]

    def check() -> bool:
        seen[0] = entry = server_entry(hub, address=address)
        error = entry.last_error.lower() if entry is not None else ""
        return (
            entry is not None
            and entry.health == UNAVAILABLE
            and any(word.lower() in error for word in words)
        )

    try:
        wait_until(check, timeout, f"{address} to fail with {words}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last seen: {seen[0]}") from None
    assert seen[0] is not None
    return seen[0]


def stop_all(*procs: ServerProc) -> None:
    for proc in procs:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=30
    )


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(tmp: Path) -> Certs:
    """A CA, and a server certificate it signed for IP:127.0.0.1 (not for names)."""
    tmp.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=wsh e2e test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=tmp,
    )  # fmt: skip
    openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=tmp,
    )  # fmt: skip
    (tmp / "server.ext").write_text(
        "subjectAltName = IP:127.0.0.1\n"
        "basicConstraints = CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=tmp,
    )  # fmt: skip
    return Certs(ca=tmp / "ca.pem", cert=tmp / "server.pem", key=tmp / "server.key")


# --- The shared cluster ------------------------------------------------------


@dataclass
class Fed:
    tmp: Path
    certs: Certs
    hub: ServerProc
    stub: hub_pb2_grpc.HubServiceStub
    plain: ServerProc  # "fed-b1", registered for the whole module
    tls: ServerProc  # "fed-tls", https only
    tok: ServerProc  # "fed-tok", wants RIGHT_TOKEN

    @property
    def hub_log(self) -> Path:
        assert self.hub.log_path is not None
        return self.hub.log_path

    @property
    def hub_config(self) -> Path:
        return self.tmp / "hub.toml"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    tmp = tmp_path_factory.mktemp("fed")
    certs = make_certs(tmp / "certs")
    hub_config = tmp / "hub.toml"
    hub_config.write_text(f'{HUB_COMMENT}\n\n[tls]\nca_file = "{certs.ca}"\n')
    hub_config.chmod(0o600)

    def backend(name: str, *args: str) -> ServerProc:
        return ServerProc(
            name, "--config", str(tmp / f"{name}.toml"), *args, log_path=tmp / f"{name}.log"
        )

    plain = backend("fed-b1")
    tls = backend("fed-tls", "--tls-cert", str(certs.cert), "--tls-key", str(certs.key))
    tok = backend("fed-tok", "--token", RIGHT_TOKEN)
    # DEBUG, so that a token leaking into any log line at all is caught.
    hub = ServerProc(
        "fed-hub", "--config", str(hub_config), "--log-level", "DEBUG", log_path=tmp / "hub.log"
    )
    procs = (plain, tls, tok, hub)
    channel = None
    try:
        for proc in procs:
            proc.start()
        channel, hub_stub = stub(hub.addr)
        assert add(hub_stub, plain.url).health == HEALTHY
        yield Fed(tmp, certs, hub, hub_stub, plain, tls, tok)
    finally:
        if channel is not None:
            channel.close()
        stop_all(*procs)


# --- 1. nginx ----------------------------------------------------------------


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (scripts/setup installs it)")
def test_backend_behind_nginx_with_a_path_prefix(fed: Fed, tmp_path: Path) -> None:
    hub = fed.stub
    node = ServerProc("node-1", "--config", str(tmp_path / "node-1.toml"))
    proxy = Nginx(tmp_path / "nginx", {})
    address = ""
    try:
        node.start()
        proxy.routes["/node-1"] = node.addr
        proxy.start()
        address = f"http://127.0.0.1:{proxy.port}/node-1"
        added = add(hub, address)
        assert added.health == HEALTHY, added
        assert (added.hostname, added.address) == ("node-1", address)
        assert added.server_id == node.server_id

        round_trip(hub, "via-proxy", "node-1")

        # A race whose only settling session takes ~8.5 s: nothing but the
        # Link's transitions and heartbeats crosses nginx all that time.
        create(hub, "nx-chatty", "node-1", CHATTY, tags=["nx"])
        create(hub, "nx-local", "", CHATTY, tags=["nx"])
        slow = (
            "for i in $(seq 85); do echo work $i; sleep 0.1; done; echo nx-slow-finished; exec cat"
        )
        create(hub, "nx-slow", "node-1", slow, tags=["nx"])
        started = time.monotonic()
        stream = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(tags=["nx"], timeout_ms=1500, max_wait_ms=30_000), timeout=40
        )
        try:
            first = next(stream).idle
        finally:
            stream.cancel()
        elapsed = time.monotonic() - started
        assert (first.session, first.server) == ("nx-slow", "node-1")
        assert "nx-slow-finished" in first.screen.lines
        assert elapsed >= 8.0, f"settled after only {elapsed:.1f}s"
        # The Link kept beating through nginx all along.
        entry = server_entry(hub, "node-1")
        assert entry is not None and entry.health == HEALTHY and entry.latency_ms > 0
        assert entry.session_count == 2
        for name, server in (("nx-chatty", "node-1"), ("nx-local", ""), ("nx-slow", "node-1")):
            kill(hub, name, server)

        # The calls really went through nginx, under the prefix.
        # (nginx logs a call when it ends.)
        wait_until(
            lambda: (
                '"POST /node-1/wsh.v1.HubService/AwaitIdle HTTP/2.0"'
                in proxy.access_log.read_text()
            ),
            10,
            "the race's AwaitIdle in nginx's access log",
        )
        access = proxy.access_log.read_text()
        assert '"POST /node-1/wsh.v1.HubService/CreateSession HTTP/2.0" 200' in access
        assert '"POST /node-1/wsh.v1.HubService/AwaitIdle HTTP/2.0" 200' in access

        # Graceful stop; the hub sees its way to node-1 gone.
        assert proxy.stop() == 0
        wait_health(hub, UNAVAILABLE, hostname="node-1")
        log = proxy.log()
        assert "[emerg]" not in log and "[alert]" not in log and "[crit]" not in log, log
        remove(hub, address)
    finally:
        proxy.kill()
        stop_all(node)
        if address and address in addresses(hub):
            remove(hub, address)


# --- 2. https ----------------------------------------------------------------


def test_https_backend_with_the_ca_from_the_config(fed: Fed, tmp_path: Path) -> None:
    hub = fed.stub
    address = f"https://{fed.tls.addr}"
    added = add(hub, address)
    try:
        assert added.health == HEALTHY, added
        assert added.hostname == "fed-tls" and added.address == address
        round_trip(hub, "over-tls", "fed-tls")
    finally:
        remove(hub, address)
    # The certificate names IP 127.0.0.1 only: the same server at 127.0.0.3 fails
    # verification, though the CA is trusted.
    misnamed = ServerProc(
        "fed-tls-3", "--config", str(tmp_path / "tls-3.toml"),
        "--tls-cert", str(fed.certs.cert), "--tls-key", str(fed.certs.key),
        listen="127.0.0.3:0",
    )  # fmt: skip
    try:
        misnamed.start()
        elsewhere = f"https://{misnamed.addr}"
        add(hub, elsewhere, wait=False)
        entry = wait_failing(hub, elsewhere, "verif")
        assert entry.hostname == "", entry
    finally:
        if misnamed.addr and f"https://{misnamed.addr}" in addresses(hub):
            remove(hub, f"https://{misnamed.addr}")
        stop_all(misnamed)


def test_https_backend_without_the_ca_then_fixed_by_reload(fed: Fed, tmp_path: Path) -> None:
    address = f"https://{fed.tls.addr}"
    config = tmp_path / "no-ca.toml"
    first = ServerProc("no-ca-hub", "--config", str(config), log_path=tmp_path / "no-ca.log")
    second = ServerProc("no-ca-hub", "--config", str(config), log_path=tmp_path / "again.log")
    try:
        first.start()
        channel, hub = stub(first.addr)
        with channel:
            # A hub that does not trust the CA: UNAVAILABLE, with a reason, no crash.
            add(hub, address, wait=False)
            entry = wait_failing(hub, address, "certificate", "ssl", "tls", "handshake")
            assert entry.hostname == "" and entry.session_count == 0
            assert servers(hub)[0].hostname == "no-ca-hub"

            # A CA file that cannot be read: the https backend is dropped with
            # a warning (not a crash), and cannot be added.
            text = config.read_text()
            assert address in text
            config.write_text(f'[tls]\nca_file = "ca.pem"\n\n{text}')
            result = hub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
            assert not result.updated and not result.added, result
            assert any("ca_file" in w and "ca.pem" in w for w in result.warnings), result
            assert addresses(hub) == ["local"]
            details = expect_error(
                lambda: add(hub, address),
                grpc.StatusCode.FAILED_PRECONDITION,
                "TLS_INVALID",
            )
            assert str(tmp_path / "ca.pem") in details
            assert addresses(hub) == ["local"]
        assert first.stop() == 0

        # A start with it skips that backend and serves the others.
        config.write_text(config.read_text() + f'\n[[servers]]\naddress = "{fed.plain.url}"\n')
        second.start()
        channel, hub = stub(second.addr)
        with channel:
            wait_health(hub, HEALTHY, hostname="fed-b1")
            assert addresses(hub) == ["local", fed.plain.url]
            assert second.log_path is not None
            log = second.log_path.read_text()
            assert f"config backend {address} skipped" in log and "ca.pem" in log, log

            # Once the CA is where the config says, a reload links to it.
            (tmp_path / "ca.pem").write_bytes(fed.certs.ca.read_bytes())
            result = hub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
            assert list(result.added) == [address], result
            entry = wait_health(hub, HEALTHY, hostname="fed-tls")
            assert entry.address == address and entry.server_id == fed.tls.server_id
            round_trip(hub, "fixed-tls", "fed-tls")

            # A changed [tls] section re-links https backends (and only them).
            (tmp_path / "ca-copy.pem").write_bytes(fed.certs.ca.read_bytes())
            config.write_text(config.read_text().replace('"ca.pem"', '"ca-copy.pem"'))
            result = hub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
            assert list(result.updated) == [address] and not result.added, result
            wait_health(hub, HEALTHY, hostname="fed-tls")
            assert server_entry(hub, "fed-b1").health == HEALTHY  # type: ignore[union-attr]
    finally:
        stop_all(first, second)


# --- 3 and 4. refusals after the handshake -----------------------------------


def test_self_loop_is_rejected(fed: Fed) -> None:
    hub = fed.stub
    added = add(hub, fed.hub.url)
    try:
        assert added.health == REJECTED, added
        assert "SELF_LOOP" in added.last_error
        # Waited for and rejected: not written to the config, where it would
        # only be rejected again at every start.
        assert fed.hub.url not in fed.hub_config.read_text()
        # The hub still answers for itself, and still routes to its backends.
        assert servers(hub)[0].address == "local"
        own = hub.GetServer(hub_pb2.GetServerRequest(hostname="fed-hub"), timeout=RPC_TIMEOUT)
        assert own.server.address == "local" and own.server.server_id == fed.hub.server_id
        assert sessions_of(hub, "fed-b1") == []
    finally:
        remove(hub, fed.hub.url)
    assert fed.hub.url not in addresses(hub)


def test_hostname_collisions_are_rejected(fed: Fed, tmp_path: Path) -> None:
    hub = fed.stub
    twin = ServerProc("fed-b1", "--config", str(tmp_path / "twin.toml"))
    impostor = ServerProc("fed-hub", "--config", str(tmp_path / "impostor.toml"))
    try:
        twin.start()
        impostor.start()
        create(hub, "original", "fed-b1")
        entry = add(hub, twin.url)
        assert entry.health == REJECTED, entry
        assert "HOSTNAME_TAKEN" in entry.last_error and fed.plain.url in entry.last_error
        entry = add(hub, impostor.url)
        assert entry.health == REJECTED, entry
        assert "HOSTNAME_TAKEN" in entry.last_error and "this hub" in entry.last_error
        # The first fed-b1 keeps its name and its sessions; calls still reach it.
        kept = server_entry(hub, "fed-b1")
        assert kept is not None and kept.health == HEALTHY
        assert kept.address == fed.plain.url
        assert sessions_of(hub, "fed-b1") == [("original", "fed-b1")]
        round_trip(hub, "still-mine", "fed-b1")
        channel, direct = stub(twin.addr)
        with channel:
            listed = direct.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT)
            assert list(listed.sessions) == []
        kill(hub, "original", "fed-b1")
    finally:
        for proc in (twin, impostor):
            if proc.addr and proc.url in addresses(hub):
                remove(hub, proc.url)
        stop_all(twin, impostor)


# --- 5. tokens ---------------------------------------------------------------


def assert_no_tokens(*texts: str) -> None:
    for text in texts:
        assert RIGHT_TOKEN not in text and WRONG_TOKEN not in text


def test_token_refused_then_accepted(fed: Fed) -> None:
    hub = fed.stub
    address = fed.tok.url
    try:
        for token, code in ((WRONG_TOKEN, "PERMISSION_DENIED"), (None, "UNAUTHENTICATED")):
            added = add(hub, address, token, wait=False)
            assert_no_tokens(str(added))
            entry = wait_failing(hub, address, "authentication failed")
            assert code in entry.last_error, entry
            assert entry.hostname == ""  # never got as far as its identity
            assert_no_tokens(str(servers(hub)))
            if token is not None:
                # Written back with its own token, so the file must be private.
                assert WRONG_TOKEN in fed.hub_config.read_text()
                assert fed.hub_config.read_text().startswith(HUB_COMMENT)
                assert stat.S_IMODE(fed.hub_config.stat().st_mode) == 0o600
            remove(hub, address)  # by address: its hostname is unknown
        added = add(hub, address, RIGHT_TOKEN)
        assert added.health == HEALTHY and added.hostname == "fed-tok", added
        round_trip(hub, "with-token", "fed-tok")
        assert_no_tokens(str(servers(hub)))
    finally:
        if address in addresses(hub):
            remove(hub, address)
    assert_no_tokens(fed.hub_config.read_text())
    assert fed.tok.log_path is not None
    assert_no_tokens(fed.hub_log.read_text(), fed.tok.log_path.read_text())
    assert "fed-tok" in fed.hub_log.read_text()  # the log was written at all


def test_token_cascade_default_then_own(fed: Fed, tmp_path: Path) -> None:
    config = tmp_path / "cascade.toml"
    config.write_text(f'default_token = "{RIGHT_TOKEN}"\n')
    config.chmod(0o600)
    cascade = ServerProc(
        "cascade-hub", "--config", str(config), "--log-level", "DEBUG",
        log_path=tmp_path / "cascade.log",
    )  # fmt: skip
    # Neither an own nor a default token: this hub's own token is presented.
    own = ServerProc(
        "own-hub", "--config", str(tmp_path / "own.toml"), "--token", RIGHT_TOKEN,
        log_path=tmp_path / "own.log",
    )  # fmt: skip
    try:
        cascade.start()
        own.start()
        channel, hub = stub(cascade.addr)
        with channel:
            added = add(hub, fed.tok.url)
            assert added.health == HEALTHY and added.hostname == "fed-tok", added
            round_trip(hub, "by-default-token", "fed-tok")
            # The default stays the default: not copied into the entry.
            text = config.read_text()
            assert fed.tok.url in text and text.count(RIGHT_TOKEN) == 1
            # An explicit token beats the default.
            remove(hub, fed.tok.url)
            add(hub, fed.tok.url, WRONG_TOKEN, wait=False)
            wait_failing(hub, fed.tok.url, "PERMISSION_DENIED")
        channel, hub = stub(own.addr)
        auth = (("authorization", f"Bearer {RIGHT_TOKEN}"),)
        with channel:
            added = add(hub, fed.tok.url, metadata=auth)
            assert added.health == HEALTHY and added.hostname == "fed-tok", added
            assert RIGHT_TOKEN not in (tmp_path / "own.toml").read_text()
    finally:
        stop_all(cascade, own)
    assert_no_tokens((tmp_path / "cascade.log").read_text(), (tmp_path / "own.log").read_text())


# --- 6. ip_access ------------------------------------------------------------


def test_ip_access_blocklist_and_allowlist(fed: Fed, tmp_path: Path) -> None:
    near = ServerProc("ip-near", "--config", str(tmp_path / "near.toml"))
    # 127.0.0.2 is loopback too; a real server answers there, so a refusal is policy.
    far = ServerProc("ip-far", "--config", str(tmp_path / "far.toml"), listen="127.0.0.2:0")
    config = tmp_path / "ip-hub.toml"
    hub_proc = ServerProc("ip-hub", "--config", str(config), log_path=tmp_path / "ip-hub.log")
    fenced = ServerProc(
        "fenced-hub", "--config", str(tmp_path / "fenced.toml"), log_path=tmp_path / "fenced.log"
    )
    try:
        near.start()
        far.start()
        assert far.addr.startswith("127.0.0.2:")

        def write(blocklist: list[str]) -> None:
            quoted = ", ".join(f'"{net}"' for net in blocklist)
            config.write_text(
                f"[ip_access]\nblocklist = [{quoted}]\n\n"
                f'[[servers]]\naddress = "{far.url}"\n\n[[servers]]\naddress = "{near.url}"\n'
            )

        write(["127.0.0.2/32"])
        config.chmod(0o600)
        hub_proc.start()  # starts although a configured backend is refused
        channel, hub = stub(hub_proc.addr)
        with channel:
            wait_health(hub, HEALTHY, hostname="ip-near")
            assert addresses(hub) == ["local", near.url]
            assert hub_proc.log_path is not None
            log = hub_proc.log_path.read_text()
            assert f"config backend {far.url} skipped" in log and "127.0.0.2/32" in log

            details = expect_error(
                lambda: add(hub, far.url),
                grpc.StatusCode.PERMISSION_DENIED,
                "IP_NOT_ALLOWED",
            )
            assert "127.0.0.2" in details and "blocklist 127.0.0.2/32" in details, details
            assert addresses(hub) == ["local", near.url]
            # Refused before anything was written.
            assert config.read_text().count(far.url) == 1

            # A reload that blocks a running backend drops it, as a start with
            # that file would have skipped it; its sessions live on there.
            create(hub, "behind-the-fence", "ip-near")
            write(["127.0.0.2/32", "127.0.0.1/32"])
            result = hub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
            assert (list(result.added), list(result.removed)) == ([], []), result
            assert any(
                w.startswith(near.url) and "blocklist 127.0.0.1/32" in w for w in result.warnings
            ), result.warnings
            assert addresses(hub) == ["local"]
            expect_error(
                lambda: create(hub, "cut-off", "ip-near"),
                grpc.StatusCode.NOT_FOUND,
                "SERVER_NOT_FOUND",
            )
            assert sessions_of(hub) == []
            channel2, direct = stub(near.addr)
            with channel2:
                listed = direct.ListSessions(hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT)
                assert [s.name for s in listed.sessions] == ["behind-the-fence"]
            # The file is the operator's: the entry stays, and lifting the
            # block brings the backend back.
            assert near.url in config.read_text()
            write(["127.0.0.2/32"])
            result = hub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
            assert list(result.added) == [near.url], result
            wait_health(hub, HEALTHY, hostname="ip-near")
            wait_until(
                lambda: sessions_of(hub) == [("behind-the-fence", "ip-near")], 15, "the session"
            )
            kill(hub, "behind-the-fence", "ip-near")

        (tmp_path / "fenced.toml").write_text('[ip_access]\nallowlist = ["10.0.0.0/8"]\n')
        fenced.start()
        channel, hub = stub(fenced.addr)
        with channel:
            details = expect_error(
                lambda: add(hub, near.url),
                grpc.StatusCode.PERMISSION_DENIED,
                "IP_NOT_ALLOWED",
            )
            assert "127.0.0.1" in details and "not in the allowlist" in details, details
            assert addresses(hub) == ["local"]
            assert "servers" not in (tmp_path / "fenced.toml").read_text()
    finally:
        stop_all(hub_proc, fenced, near, far)


# --- 7. invalid addresses ----------------------------------------------------


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("127.0.0.1:7600", "did you mean 'http://127.0.0.1:7600'?"),
        ("ftp://127.0.0.1:21", "must be http or https"),
        ("HTTP://127.0.0.1:7600", "did you mean 'http://127.0.0.1:7600'?"),
        ("", "it is empty"),
        ("http://", "no host"),
        ("http://:7600", "no host"),
        ("http://127.0.0.1:0", "port '0'"),
        ("http://127.0.0.1:65536", "port '65536'"),
        ("http://127.0.0.1:http", "port 'http'"),
        ("http://::1:7600", "must be in brackets"),
        ("http://fe80::1", "must be in brackets"),
        ("http://0.0.0.0:7600", "unspecified address"),
        ("http://[::]:7600", "unspecified address"),
        ("http://user@127.0.0.1:7600", "user info"),
        ("http://127.0.0.1:7600/a/../b", "path segment"),
        ("http://127.0.0.1:7600/?q=1", "query"),
        ("http://bad_host:7600", "not a valid host name"),
    ],
)
def test_invalid_addresses_are_refused(fed: Fed, address: str, says: str) -> None:
    before = fed.hub_config.read_text()
    registered = addresses(fed.stub)
    details = expect_error(
        lambda: add(fed.stub, address),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ADDRESS_INVALID",
    )
    assert says in details, details
    assert "Invalid backend address" in details
    assert fed.hub_config.read_text() == before
    assert addresses(fed.stub) == registered


# --- 8. config write-back, restart, reload -----------------------------------


def test_config_write_back_restart_and_reload(fed: Fed, tmp_path: Path) -> None:
    config = tmp_path / "wb.toml"
    comment = "# write-back hub: keep me"
    config.write_text(f"{comment}\n")
    config.chmod(0o644)
    w1 = ServerProc("wb-1", "--config", str(tmp_path / "w1.toml"))
    w2 = ServerProc("wb-2", "--config", str(tmp_path / "w2.toml"))

    def hub_proc() -> ServerProc:
        return ServerProc("wb-hub", "--config", str(config), log_path=tmp_path / "wb-hub.log")

    first = hub_proc()
    second = hub_proc()
    try:
        w1.start()
        w2.start()
        first.start()
        channel, hub = stub(first.addr)
        with channel:
            # Any spelling is written in canonical form.
            assert add(hub, f"  http://{w1.addr}/ ").health == HEALTHY
            assert add(hub, w2.url).health == HEALTHY
            text = config.read_text()
            assert text.startswith(comment)
            assert f'address = "{w1.url}"' in text and f'address = "{w2.url}"' in text
            assert f"{w1.url}/" not in text
            assert stat.S_IMODE(config.stat().st_mode) == 0o600
            hub.RemoveServer(hub_pb2.RemoveServerRequest(hostname="wb-2"), timeout=RPC_TIMEOUT)
            text = config.read_text()
            assert w2.url not in text and w1.url in text and text.startswith(comment)
            create(hub, "persist", "wb-1")
        assert first.stop() == 0

        # A new hub process from the same file: its backends come back by themselves.
        second.start()
        channel, hub = stub(second.addr)
        with channel:
            entry = wait_health(hub, HEALTHY, hostname="wb-1")
            assert entry.address == w1.url
            assert addresses(hub) == ["local", w1.url]
            wait_until(lambda: sessions_of(hub) == [("persist", "wb-1")], 15, "wb-1's sessions")

            def edit(*entries: str) -> None:
                config.write_text(f"{comment}\n" + "".join(entries))

            tok_wrong = f'\n[[servers]]\naddress = "{fed.tok.url}"\ntoken = "{WRONG_TOKEN}"\n'
            tok_right = tok_wrong.replace(WRONG_TOKEN, RIGHT_TOKEN)
            w1_entry = f'\n[[servers]]\naddress = "{w1.url}"\n'
            w2_entry = f'\n[[servers]]\naddress = "http://{w2.addr}/"\n'
            edit(w1_entry, tok_wrong)
            result = hub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
            assert list(result.added) == [fed.tok.url] and not result.removed, result
            wait_failing(hub, fed.tok.url, "PERMISSION_DENIED")

            edit(tok_right, w2_entry)
            result = hub.ReloadConfig(hub_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT)
            assert list(result.added) == [w2.url], result
            assert list(result.removed) == [w1.url], result
            assert list(result.updated) == [fed.tok.url], result
            assert_no_tokens(str(result))
            wait_health(hub, HEALTHY, hostname="fed-tok")
            wait_health(hub, HEALTHY, hostname="wb-2")
            assert sorted(addresses(hub)) == sorted(["local", fed.tok.url, w2.url])
            # A reload leaves the hand-written file alone.
            assert config.read_text().startswith(f"{comment}\n")

            # The same through the command line.
            edit(tok_right)
            cli = subprocess.run(
                [sys.executable, "-m", "wsh", "--addr", second.addr, "servers", "reload"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
            )
            assert cli.returncode == 0, cli.stderr
            lines = cli.stdout.splitlines()
            assert lines[0].split() == ["CHANGE", "ADDRESS"], cli.stdout
            assert lines[1].split() == ["removed", w2.url], cli.stdout
            assert addresses(hub) == ["local", fed.tok.url]
            cli = subprocess.run(
                [sys.executable, "-m", "wsh", "--addr", second.addr, "servers", "reload"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
            )
            assert (cli.returncode, cli.stdout.strip()) == (0, "no changes"), cli
        # The removed backend's session lives on, on the backend.
        channel, direct = stub(w1.addr)
        with channel:
            assert [s.name for s in direct.ListSessions(
                hub_pb2.ListSessionsRequest(), timeout=RPC_TIMEOUT
            ).sessions] == ["persist"]  # fmt: skip
    finally:
        stop_all(first, second, w1, w2)
    assert_no_tokens((tmp_path / "wb-hub.log").read_text())


# --- 9. what ListServers and ListSessions show -------------------------------


def test_list_servers_fields_and_unavailable_backends(fed: Fed, tmp_path: Path) -> None:
    hub = fed.stub
    extra = ServerProc("fed-b2", "--config", str(tmp_path / "b2.toml"))
    doomed = ServerProc("fed-doomed", "--config", str(tmp_path / "doomed.toml"))
    try:
        extra.start()
        doomed.start()
        assert add(hub, extra.url).health == HEALTHY
        assert add(hub, doomed.url).health == HEALTHY
        plan = {"fed-b1": 2, "fed-b2": 3, "fed-doomed": 1}
        for server, count in plan.items():
            for index in range(count):
                create(hub, f"count-{index}", server)
        create(hub, "count-local", "")

        def counts_match() -> bool:
            entries = {s.hostname: s for s in servers(hub)}
            return all(entries[h].session_count == n for h, n in plan.items())

        wait_until(counts_match, 15, "session counts from the Link inventories")
        wait_until(
            lambda: all(s.latency_ms > 0 for s in servers(hub)[1:] if s.health == HEALTHY),
            10,
            "heartbeat latencies",
        )
        entries = servers(hub)
        local = entries[0]
        assert (local.hostname, local.address, local.role) == (
            "fed-hub",
            "local",
            hub_pb2.SERVER_ROLE_LOCAL,
        )
        assert local.server_id == fed.hub.server_id and local.session_count >= 1
        by_name = {s.hostname: s for s in entries[1:]}
        for proc in (fed.plain, extra, doomed):
            entry = by_name[proc.hostname]
            assert entry.health == HEALTHY and not entry.last_error
            assert entry.server_id == proc.server_id and entry.address == proc.url
            assert 0 < entry.latency_ms < 5_000
            assert entry.role == hub_pb2.SERVER_ROLE_MEMBER
            assert len(sessions_of(hub, proc.hostname)) == plan[proc.hostname]
        everywhere = sessions_of(hub)
        assert ("count-0", "fed-doomed") in everywhere

        # A backend that dies: listed as UNAVAILABLE, its sessions no longer listed.
        doomed.stop(signal.SIGKILL)
        entry = wait_health(hub, UNAVAILABLE, hostname="fed-doomed")
        assert entry.session_count == 0 and entry.latency_ms == 0 and entry.last_error
        assert entry.server_id == doomed.server_id
        assert sessions_of(hub) == [s for s in everywhere if s[1] != "fed-doomed"]
        expect_error(
            lambda: sessions_of(hub, "fed-doomed"),
            grpc.StatusCode.UNAVAILABLE,
            "SERVER_UNAVAILABLE",
        )
        # Races go on without it.
        stream = hub.RaceIdle(
            hub_pb2.RaceIdleRequest(timeout_ms=200, max_wait_ms=10_000), timeout=20
        )
        try:
            assert next(stream).idle.server != "fed-doomed"
        finally:
            stream.cancel()
        for server, count in plan.items():
            if server != "fed-doomed":
                for index in range(count):
                    kill(hub, f"count-{index}", server)
        kill(hub, "count-local", "")
    finally:
        for proc in (extra, doomed):
            if proc.addr and proc.url in addresses(hub):
                remove(hub, proc.url)
        stop_all(extra, doomed)


# A stopped backend's kernel still acknowledges TCP and gRPC waits 60 s for a
# keepalive ping's ack, so the hub's heartbeats notice it (HEARTBEAT_MISS_S,
# 3 s). The bound leaves room for a loaded 2-core machine.
STOP_NOTICED_S = 8.0


def test_stopped_backend_is_noticed_and_heals(fed: Fed, tmp_path: Path) -> None:
    hub = fed.stub
    frozen = ServerProc("fed-frozen", "--config", str(tmp_path / "frozen.toml"))
    try:
        frozen.start()
        assert add(hub, frozen.url).health == HEALTHY
        assert frozen.proc is not None
        frozen.proc.send_signal(signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            wait_health(hub, UNAVAILABLE, hostname="fed-frozen", timeout=STOP_NOTICED_S)
            print(f"stopped backend noticed in {time.monotonic() - stopped:.2f}s")
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
        wait_health(hub, HEALTHY, hostname="fed-frozen", timeout=15)
        remove(hub, frozen.url)
    finally:
        stop_all(frozen)
