"""A private DNS server for discovery tests: Debian's dnsmasq on 127.0.0.1 and
a free port, answering for ``wsh.test`` from files the test rewrites."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.procs import free_port

DOMAIN = "wsh.test"


def binary() -> str | None:
    """dnsmasq lives in /usr/sbin, which a user's PATH may not have."""
    return shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")


def available() -> bool:
    return binary() is not None


class Dnsmasq:
    """``hosts`` lines ("IP NAME") are re-read on :meth:`set_hosts`; SRV
    records (``srv``: "NAME,TARGET,PORT") are fixed for the process's life."""

    def __init__(self, tmp: Path, hosts: list[str], srv: tuple[str, ...] = ()) -> None:
        self.hosts_file = tmp / "dns-hosts"
        self.log = tmp / "dnsmasq.log"
        self.srv = srv
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.hosts_file.write_text("".join(line + "\n" for line in hosts))

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Dnsmasq:
        self.port = free_port()
        argv = [
            binary() or "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts_file}",
            # Names under wsh.test that are not in the files do not exist.
            f"--local=/{DOMAIN}/",
            # Records say 1 s: a hub may cache them that long, no longer.
            "--local-ttl=1",
            "--pid-file=",
            "--log-facility=-",
            *(f"--srv-host={record}" for record in self.srv),
        ]
        if os.geteuid() == 0:
            # Else it becomes nobody, who cannot read the test's files on SIGHUP.
            argv.append("--user=root")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def set_hosts(self, hosts: list[str]) -> None:
        """Replace the A/AAAA records; dnsmasq re-reads them on SIGHUP."""
        self.hosts_file.write_text("".join(line + "\n" for line in hosts))
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self) -> Dnsmasq:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
