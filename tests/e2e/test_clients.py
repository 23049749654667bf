"""The Node, Go and Java clients of clients/ against a real hub with one backend.

Each client is built from protos/ (its own README says how), then runs the
send / await idle / read loop on the backend directly and through the hub, a
RaceIdle stream across both servers and an ErrorInfo decoding, and exits
non-zero on any failed check. A missing toolchain fails the test: scripts/setup
installs them all.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.procs import REPO, assert_no_traceback

CLIENTS = REPO / "clients"
# Cold builds under a loaded CI machine: Go compiles grpc-go from source
# (18 s on an idle 2-core machine), javac the generated stubs (22 s).
BUILD_TIMEOUT = 600.0
# A run takes 1-4 s; most of the bound is for a loaded machine.
RUN_TIMEOUT = 120.0

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(BUILD_TIMEOUT + RUN_TIMEOUT + 30)]


@pytest.fixture(scope="module")
def hub_and_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A hub with one backend, build-1."""
    with Cluster(tmp_path_factory.mktemp("clients"), backends=("build-1",)) as running:
        yield running


def run(argv: list[str], cwd: Path, timeout: float) -> float:
    """Run ``argv``; its duration in seconds, or a failure showing its output."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        # The output so far comes as bytes, even with text=True.
        output = [
            out.decode(errors="replace") if isinstance(out, bytes) else out or ""
            for out in (exc.stdout, exc.stderr)
        ]
        pytest.fail(f"{argv} still running after {timeout:.0f}s:\n" + "\n".join(output))
    except FileNotFoundError as exc:
        pytest.fail(f"{argv[0]} is not installed (scripts/setup installs it): {exc}")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return elapsed


def check_client(
    cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    language: str,
    source: str,
    build: list[str] | None,
    command: list[str],
) -> None:
    """Build (if ``build``) and run one client against the hub and its backend."""
    here = CLIENTS / language
    build_s = run(build, here, BUILD_TIMEOUT) if build else 0.0
    backend = cluster.backends["build-1"]
    run_s = run([*command, cluster.hub.addr, backend.addr], here, RUN_TIMEOUT)
    lines = [line for line in (here / source).read_text().splitlines() if line.strip()]
    with capsys.disabled():
        print(
            f"\n[clients] {language}: {source} {len(lines)} non-blank lines,"
            f" build {build_s:.1f} s, run {run_s:.1f} s"
        )
    for log in (cluster.hub.log_path, backend.log_path):
        assert log is not None
        assert_no_traceback(log.read_text())


def test_node_client(hub_and_backend: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert (CLIENTS / "node" / "node_modules").is_dir(), "run scripts/setup (npm ci)"
    check_client(hub_and_backend, capsys, "node", "client.js", None, ["node", "client.js"])


def test_go_client(hub_and_backend: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    check_client(hub_and_backend, capsys, "go", "main.go", ["./build.sh"], ["build/wsh-client"])


def test_java_client(hub_and_backend: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    check_client(
        hub_and_backend,
        capsys,
        "java",
        "src/WshClient.java",
        ["./build.sh"],
        ["java", "-jar", "build/wsh-client.jar"],
    )


def test_buf_gen_yaml_generates_go_and_java_offline(tmp_path: Path) -> None:
    """`buf generate` (buf.gen.yaml, local plugins only) writes Go and Java
    code in the packages the protos' options name."""
    done = subprocess.run(
        ["buf", "generate", "-o", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    go = tmp_path / "gen/go/wsh/v1"
    assert (go / "hub_grpc.pb.go").is_file() and (go / "errors.pb.go").is_file()
    assert "package wshv1" in (go / "hub.pb.go").read_text()
    java = tmp_path / "gen/java/dev/wsh/api/v1"
    assert (java / "HubServiceGrpc.java").is_file() and (java / "ErrorReason.java").is_file()
