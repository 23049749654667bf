"""The seed's distributed fan-out, end to end, on this machine.

Starts two backends and a hub as real `wsh server` processes on free loopback
ports, registers the backends with the hub, then does what an agent would:
creates sessions tagged `ci` on each server, sends each its work, races them
by tag until each is READY (its shell waits at the prompt again: a job
silent in a `sleep` is not mistaken for a finished one) and reads each
result as it settles. Finally a sequential pipeline runs build -> test ->
deploy on three servers.

    python examples/fanout.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from wsh.client import Client
from wsh.v1 import hub_pb2

READY = re.compile(r"wsh: listening on (\S+) as ")


def start_server(hostname: str, workdir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wsh",
            "server",
            "--listen",
            "127.0.0.1:0",
            "--hostname",
            hostname,
            "--config",
            str(workdir / f"{hostname}.toml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = READY.search(line)
    if not match:
        proc.kill()
        raise SystemExit(f"{hostname} did not start: {line!r}")
    return proc, match.group(1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        addrs = {}
        for name in ("build-1", "build-2", "hub"):
            proc, addrs[name] = start_server(name, workdir)
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
        hub = stack.enter_context(Client(addrs["hub"], timeout=30))

        print("== registering backends")
        for name in ("build-1", "build-2"):
            added = hub.add_server(f"http://{addrs[name]}", wait=True)
            health = hub_pb2.ServerHealth.Name(added.health)
            print(f"  {added.hostname:8} {added.address:28} {health}")
        for entry in hub.list_servers():
            print(f"  cluster: {entry.hostname:8} {entry.address}")

        print("== fan-out: three sessions tagged ci on three servers")
        work = {
            # Silent for 1.5 s: a quiet race took it for finished after 0.7 s.
            ("build-api", "build-1"): "echo compiling api; sleep 1.5; echo api ok",
            ("build-web", "build-2"): "echo bundling web; sleep 0.3; echo web ok",
            ("test-e2e", ""): "for i in 1 2; do echo e2e step $i; sleep 0.4; done; echo e2e ok",
        }
        for name, server in work:
            hub.create_session(
                name=name, server=server, command="bash --norc --noprofile", tags=["ci"]
            )
        for (name, server), command in work.items():
            hub.send_input(name, command + "\n", server=server)
        started = time.monotonic()
        with hub.race_idle(tags=["ci"], timeout_ms=700, mode="ready") as stream:
            for _, idle in zip(work, stream, strict=False):
                last = [line for line in idle.screen.lines if line][-2:]
                print(
                    f"  +{time.monotonic() - started:4.1f}s settled {idle.session} on "
                    f"{idle.server} (ready: {idle.foreground}): {last}"
                )

        print("== sequential stages: build on build-1, test on build-2, deploy on the hub")
        stages = [
            ("build", "build-1", "echo make release && echo BUILD OK"),
            ("test", "build-2", "echo running tests && echo 42 passed"),
            ("deploy", "", "echo deploying && echo DEPLOYED"),
        ]
        for name, server, command in stages:
            hub.create_session(
                name=name, server=server, command="bash --norc --noprofile", tags=["pipeline"]
            )
            hub.await_idle(name, server=server, mode="ready")  # the prompt is up
            # READY by default: the shell waited at its prompt before the text.
            idle = hub.run(name, command + "\n", server=server)
            print(f"  {name:6} on {idle.server:8}: {[line for line in idle.screen.lines if line]}")

        for session in hub.list_sessions():
            hub.kill_session(session.name, server=session.server)
        print("== done; all sessions killed")


if __name__ == "__main__":
    main()
