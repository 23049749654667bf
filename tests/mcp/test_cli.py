"""``wsh mcp``'s command line: what it refuses before serving anything."""

from __future__ import annotations

import pytest

from wsh.cli import main


def test_listening_off_loopback_needs_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WSH_TOKEN", raising=False)
    assert main(["mcp", "--listen", "0.0.0.0:0"]) == 1
    assert "TOKEN_REQUIRED" in capsys.readouterr().err


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:", "127.0.0.1:99999", ":80"])
def test_a_bad_listen_address_is_a_usage_error(
    listen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mcp", "--listen", listen]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_help_names_the_transports_and_is_listed_by_wsh_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["mcp", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--listen" in out and "--allow-admin" in out and "stdin/stdout" in out
    assert main(["--help"]) == 0
    assert "mcp" in capsys.readouterr().out
