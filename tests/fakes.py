"""Launching lying fake backends (``tests/fake_backend.py``) as processes, for any test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.procs import REPO, read_line

READY = re.compile(rb"fake: listening on (\S+)")


class FakeBackend:
    """``tests/fake_backend.py`` as a subprocess."""

    def __init__(self, tmp: Path, hostname: str, **config: Any) -> None:
        self.hostname = hostname
        self.calls_file = tmp / f"calls-{id(self)}.txt"
        self.log = tmp / f"fake-{id(self)}.log"
        self.config = {"hostname": hostname, "calls": str(self.calls_file), **config}
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = ""

    def start(self) -> FakeBackend:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.fake_backend", json.dumps(self.config)],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO,
            )
        assert self.proc.stdout is not None
        match = READY.search(read_line(self.proc.stdout, 20))
        assert match, f"fake backend did not start: {self.log.read_text()}"
        self.addr = match.group(1).decode()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def calls(self) -> list[str]:
        return self.calls_file.read_text().split() if self.calls_file.exists() else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def session_dict(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "server": "x", "rows": 24, "cols": 80, "state": 1, **fields}
