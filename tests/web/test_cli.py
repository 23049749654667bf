"""``wsh web``'s command line: what it refuses before serving anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsh.cli.web import main


@pytest.fixture(autouse=True)
def _no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSH_TOKEN", raising=False)


def test_listen_must_be_host_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--listen", "nowhere"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_tls_certificate_and_key_go_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--listen", "127.0.0.1:0", "--tls-cert", str(tmp_path / "c.pem")]) == 2
    assert "go together" in capsys.readouterr().err


def test_short_token_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "token").write_text("tiny-tkn\n")
    assert main(["--listen", "127.0.0.1:0", "--token-file", str(tmp_path / "token")]) == 1
    err = capsys.readouterr().err
    assert "TOKEN_TOO_SHORT" in err and "tiny-tkn" not in err


def test_unreadable_token_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--listen", "127.0.0.1:0", "--token-file", str(tmp_path / "missing")]) == 1
    assert "TOKEN_FILE" in capsys.readouterr().err


def test_off_loopback_with_a_token_but_bad_tls_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("a-long-enough-token-0123\n")
    (tmp_path / "c.pem").write_text("not a certificate")
    code = main([
        "--listen", "0.0.0.0:0", "--token-file", str(tmp_path / "token"),
        "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "c.pem"),
    ])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "TLS_INVALID" in err and "a-long-enough-token" not in err
