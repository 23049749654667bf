"""Unit tests of the ``wsh`` spinner."""

from __future__ import annotations

import io
import time

import pytest

from wsh.cli.spinner import Spinner


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_spinner_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    with Spinner("waiting", stream=stream, interval=0.01):
        time.sleep(0.05)
    assert stream.getvalue() == ""


def test_spinner_draws_and_clears_on_a_terminal() -> None:
    stream = FakeTTY()
    with Spinner("waiting", stream=stream, interval=0.01):
        time.sleep(0.05)
    out = stream.getvalue()
    assert "waiting (0s)" in out
    assert out.endswith("\r\x1b[K")


def test_spinner_shows_a_status(capsys: pytest.CaptureFixture[str]) -> None:
    stream = FakeTTY()
    answers = iter(["connecting", "unavailable: refused"])
    with Spinner("adding x", stream=stream, interval=0.01, status=lambda: next(answers, "done")):
        time.sleep(0.3)
    out = stream.getvalue()
    assert "adding x (0s): connecting\x1b[K" in out
    assert "adding x (0s): unavailable: refused\x1b[K" in out
