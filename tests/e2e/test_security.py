"""Authentication, throttling and TLS against real server processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.procs import REPO, ServerProc, error_reason
from wsh.client import Client, WshRpcError
from wsh.v1 import hub_pb2, hub_pb2_grpc

pytestmark = pytest.mark.e2e

TOKEN = "correct-horse-battery-staple-42"
RPC_TIMEOUT = 15


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("auth")
    # Listening on all addresses (dual stack) makes 127.0.0.1 and [::1] two
    # different peers for the throttling test; such a listener needs a token.
    with ServerProc(
        "guarded",
        "--config",
        str(tmp / "c.toml"),
        listen="[::]:0",
        env={"WSH_TOKEN": TOKEN},
        log_path=tmp / "server.log",
    ) as proc:
        yield proc


def hub_at(addr: str, token: str | None = None) -> tuple[grpc.Channel, hub_pb2_grpc.HubServiceStub]:
    channel = grpc.insecure_channel(addr)
    if token is not None:
        metadata = (("authorization", f"Bearer {token}"),)
        channel = grpc.intercept_channel(channel, _Meta(metadata))
    return channel, hub_pb2_grpc.HubServiceStub(channel)


class _Meta(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        details = details._replace(metadata=self._metadata)
        return continuation(details, request)


def port(proc: ServerProc) -> str:
    return proc.addr.rsplit(":", 1)[1]


def call_info(stub: hub_pb2_grpc.HubServiceStub) -> grpc.RpcError | None:
    try:
        stub.GetServerInfo(hub_pb2.GetServerInfoRequest(), timeout=RPC_TIMEOUT)
    except grpc.RpcError as err:
        return err
    return None


def test_missing_and_wrong_tokens(guarded: ServerProc) -> None:
    addr = f"127.0.0.1:{port(guarded)}"
    channel, stub = hub_at(addr)
    with channel:
        err = call_info(stub)
        assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert error_reason(err) == "UNAUTHENTICATED"
        # Health stays open for load balancers and meshes.
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        # Reflection obeys the same rule as the API.
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(
                reflect.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                    timeout=RPC_TIMEOUT,
                )
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    channel, stub = hub_at(addr, "not-the-token-at-all")
    with channel:
        err = call_info(stub)
        assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert error_reason(err) == "PERMISSION_DENIED"
        assert TOKEN not in (err.details() or "")  # type: ignore[attr-defined]
    with Client(addr, token=TOKEN) as client:
        assert client.get_server_info().hostname == "guarded"
        reflect = reflection_pb2_grpc.ServerReflectionStub(client._channel)
        replies = list(
            reflect.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
                timeout=RPC_TIMEOUT,
            )
        )
        names = [s.name for s in replies[0].list_services_response.service]
        assert "wsh.v1.HubService" in names


def test_repeated_failures_slow_down_only_that_peers_failures(guarded: ServerProc) -> None:
    attacker, stub = hub_at(f"[::1]:{port(guarded)}", "wrong-token-guess-0000")
    with attacker:
        codes = [call_info(stub).code() for _ in range(15)]  # type: ignore[union-attr]
        assert codes[0] == grpc.StatusCode.PERMISSION_DENIED
        assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED
        err = call_info(stub)
        assert err is not None and error_reason(err) == "AUTH_RATE_LIMITED"
    # The right token from that same address still works: behind a proxy
    # every client shares one address, and someone else's guesses must not
    # lock out the clients that hold the token...
    with Client(f"[::1]:{port(guarded)}", token=TOKEN) as client:
        assert client.get_server_info().hostname == "guarded"
    # ...and another peer's failures are not slowed down either.
    other_channel, other = hub_at(f"127.0.0.1:{port(guarded)}", "wrong-token-guess-0001")
    with other_channel:
        err = call_info(other)
        assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_token_never_in_logs(guarded: ServerProc) -> None:
    assert guarded.log_path is not None
    assert TOKEN not in guarded.log_path.read_text()


def run_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "WSH_TOKEN"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "wsh", "server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=full_env,
        cwd=REPO,
        check=False,
    )


def test_non_loopback_without_token_is_refused(tmp_path: Path) -> None:
    done = run_server("--listen", "0.0.0.0:0", "--config", str(tmp_path / "c.toml"))
    assert done.returncode != 0
    assert "TOKEN_REQUIRED" in done.stderr and "--token" in done.stderr
    done = run_server(
        "--listen", "0.0.0.0:0", "--token", "short", "--config", str(tmp_path / "c.toml")
    )
    assert done.returncode != 0 and "TOKEN_TOO_SHORT" in done.stderr


def test_generated_token_is_printed_once_and_works(tmp_path: Path) -> None:
    proc = ServerProc(
        "gen",
        "--generate-token",
        "--config",
        str(tmp_path / "c.toml"),
        listen="0.0.0.0:0",
        log_path=tmp_path / "log",
        env={"WSH_TOKEN": ""},
    )
    with proc:
        log = (tmp_path / "log").read_text()
        lines = [line for line in log.splitlines() if "generated token" in line]
        assert len(lines) == 1
        token = lines[0].rsplit(" ", 1)[1]
        assert len(token) == 32 and token.isalnum()
        with Client(f"127.0.0.1:{port(proc)}", token=token) as client:
            assert client.get_server_info().hostname == "gen"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=wsh test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return d


def test_tls_and_mutual_tls(pki: Path, tmp_path: Path) -> None:
    tls_args = ("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    with ServerProc("tls", *tls_args, "--config", str(tmp_path / "a.toml")) as proc:
        with Client(f"https://{proc.addr}", ca_file=str(pki / "ca.pem"), timeout=10) as client:
            assert client.get_server_info().hostname == "tls"
        with Client(f"https://{proc.addr}", timeout=5) as client:  # system roots: untrusted
            with pytest.raises(WshRpcError) as info:
                client.get_server_info()
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
    mtls = (*tls_args, "--tls-client-ca", str(pki / "ca.pem"))
    with ServerProc("mtls", *mtls, "--config", str(tmp_path / "b.toml")) as proc:
        with (
            Client(f"https://{proc.addr}", ca_file=str(pki / "ca.pem"), timeout=5) as client,
            pytest.raises(WshRpcError),
        ):
            client.get_server_info()  # no client certificate
        with Client(
            f"https://{proc.addr}",
            ca_file=str(pki / "ca.pem"),
            client_cert=str(pki / "client.pem"),
            client_key=str(pki / "client.key"),
            timeout=10,
        ) as client:
            assert client.get_server_info().hostname == "mtls"
            client.create_session(name="secure", command="cat")
            client.kill_session("secure")


def test_hub_presents_client_certificate_to_mtls_backend(pki: Path, tmp_path: Path) -> None:
    backend_args = (
        "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
        "--tls-client-ca", str(pki / "ca.pem"),
    )  # fmt: skip
    hub_config = tmp_path / "hub.toml"
    hub_config.write_text(
        "[tls]\n"
        f'ca_file = "{pki / "ca.pem"}"\n'
        f'client_cert = "{pki / "client.pem"}"\n'
        f'client_key = "{pki / "client.key"}"\n'
    )
    with (
        ServerProc("secure-be", *backend_args, "--config", str(tmp_path / "be.toml")) as be,
        ServerProc("hub", "--config", str(hub_config)) as hub,
        Client(hub.addr, timeout=20) as client,
    ):
        added = client.add_server(f"https://{be.addr}", wait=True)
        assert added.health == hub_pb2.SERVER_HEALTH_HEALTHY, added.last_error
        session = client.create_session(name="over-mtls", server="secure-be", command="cat")
        assert session.server == "secure-be"


def test_token_file_and_command_line_warning(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}  \nsecond line is ignored\n")
    token_file.chmod(0o600)
    log = tmp_path / "a.log"
    args = ("--config", str(tmp_path / "c.toml"))
    with ServerProc("tf", *args, "--token-file", str(token_file), log_path=log) as proc:
        with Client(proc.addr, token=TOKEN) as client:
            assert client.get_server_info().hostname == "tf"
        channel, stub = hub_at(proc.addr)
        with channel:
            err = call_info(stub)
            assert err is not None and error_reason(err) == "UNAUTHENTICATED"
    text = log.read_text()
    assert TOKEN not in text and "WARNING" not in text
    # Readable by others: it still works, with a warning.
    token_file.chmod(0o644)
    log = tmp_path / "b.log"
    with (
        ServerProc("tf", *args, "--token-file", str(token_file), log_path=log) as proc,
        Client(proc.addr, token=TOKEN) as client,
    ):
        assert client.get_server_info().hostname == "tf"
    text = log.read_text()
    assert "readable by other users" in text and TOKEN not in text
    # --token is visible in ps: one warning, never the token itself.
    log = tmp_path / "c.log"
    with (
        ServerProc("tf", *args, "--token", TOKEN, log_path=log) as proc,
        Client(proc.addr, token=TOKEN) as client,
    ):
        assert client.get_server_info().hostname == "tf"
    text = log.read_text()
    assert text.count("visible to every user") == 1 and TOKEN not in text
    # An empty or missing file is refused at start.
    token_file.write_text("\n")
    done = run_server("--listen", "127.0.0.1:0", *args, "--token-file", str(token_file))
    assert done.returncode != 0 and "TOKEN_FILE" in done.stderr
    done = run_server("--listen", "127.0.0.1:0", *args, "--token-file", str(tmp_path / "nope"))
    assert done.returncode != 0 and "TOKEN_FILE" in done.stderr
