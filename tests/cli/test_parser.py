"""Unit tests of the ``wsh`` command line: parsing, usage errors, help, version."""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import wsh
from wsh.cli import main, server
from wsh.cli.commands import servers, sessions, waiting
from wsh.cli.output import EXIT_STATUSES
from wsh.cli.parser import RenamedOption, build_parser

HANDLER_MODULES = {"sessions": sessions, "waiting": waiting, "servers": servers}


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "handler", "expected"),
    [
        (
            ["create", "w", "--command", "bash -l", "--rows", "50", "--cols", "120"],
            "sessions.create",
            {"name": "w", "command": "bash -l", "rows": 50, "cols": 120, "server": ""},
        ),
        (
            ["create", "--env", "A=1", "--env", "B=x=y", "--tag", "t1", "--tag", "t2"],
            "sessions.create",
            {"name": "", "env": [("A", "1"), ("B", "x=y")], "tag": ["t1", "t2"]},
        ),
        (["create", "--cwd", "/tmp", "--server", "b1"], "sessions.create", {"cwd": "/tmp"}),
        (["list"], "sessions.list_sessions", {"tag": None, "server": ""}),
        (
            ["list", "--tag", "a", "--server", "b1"],
            "sessions.list_sessions",
            {"tag": ["a"], "server": "b1"},
        ),
        (["get", "s", "--server", "b1"], "sessions.get", {"name": "s", "server": "b1"}),
        (["send", "s", r"ls\n"], "sessions.send", {"text": r"ls\n", "no_escapes": False}),
        (["send", "s", "--stdin"], "sessions.send", {"text": None, "stdin": True}),
        (["send", "s", "x", "--no-escapes"], "sessions.send", {"no_escapes": True}),
        (["screen", "s", "--styled"], "sessions.screen", {"styled": True}),
        (
            ["scrollback", "s", "--offset", "10", "--limit", "5"],
            "sessions.scrollback",
            {"offset": 10, "limit": 5},
        ),
        (
            ["idle", "s"],
            "waiting.idle",
            {"quiet_ms": 500, "max_wait_ms": 0, "last_generation": None, "fresh": False},
        ),
        (
            ["idle", "s", "--quiet-ms", "100", "--max-wait-ms", "9000", "--fresh"],
            "waiting.idle",
            {"quiet_ms": 100, "max_wait_ms": 9000, "fresh": True},
        ),
        (["idle", "s", "--last-generation", "7"], "waiting.idle", {"last_generation": 7}),
        (["idle", "s"], "waiting.idle", {"ready": False}),
        (["idle", "s", "--ready"], "waiting.idle", {"ready": True}),
        (["race", "--ready"], "waiting.race", {"ready": True}),
        (["run", "s", "x"], "waiting.run", {"ready": None}),
        (["run", "s", "x", "--ready"], "waiting.run", {"ready": True}),
        (["run", "s", "x", "--no-ready"], "waiting.run", {"ready": False}),
        (["race"], "waiting.race", {"tag": None, "all": False, "last_session": ""}),
        (
            [
                "race",
                "--tag",
                "ci",
                "--last-session",
                "a",
                "--last-server",
                "b1",
                "--last-generation",
                "3",
                "--all",
                "--quiet-ms",
                "50",
            ],
            "waiting.race",
            {
                "tag": ["ci"],
                "last_session": "a",
                "last_server": "b1",
                "last_generation": 3,
                "all": True,
                "quiet_ms": 50,
            },
        ),
        (["race", "--count", "3"], "waiting.race", {"count": 3, "exclude": []}),
        (
            [
                "race",
                "--exclude",
                "b1/a@3",
                "--exclude",
                "x.y@0",
                "--exclude",
                "/z@18446744073709551615",
            ],
            "waiting.race",
            {"exclude": [("b1", "a", 3), ("", "x.y", 0), ("", "z", 2**64 - 1)]},
        ),
        (["run", "s", r"make\n", "--quiet-ms", "800"], "waiting.run", {"quiet_ms": 800}),
        (["kill", "s"], "sessions.kill", {"name": "s"}),
        (["rename", "s", "t"], "sessions.rename", {"name": "s", "new_name": "t"}),
        (
            ["tag", "s", "--add", "a", "--add", "b", "--remove", "c"],
            "sessions.tag",
            {"add": ["a", "b"], "remove": ["c"]},
        ),
        (["resize", "s", "40", "100"], "sessions.resize", {"rows": 40, "cols": 100}),
        (["servers"], "servers.list_servers", {}),
        (["servers", "list"], "servers.list_servers", {}),
        (["servers", "get", "b1"], "servers.get_server", {"hostname": "b1"}),
        (
            ["servers", "add", "http://10.0.0.2:7600", "--token", "backend-secret"],
            "servers.add_server",
            {"address": "http://10.0.0.2:7600", "backend_token": "backend-secret", "token": None},
        ),
        (
            ["servers", "add", "http://h:1", "--no-wait", "--wait-timeout-ms", "99"],
            "servers.add_server",
            {"no_wait": True, "wait_timeout_ms": 99},
        ),
        (["servers", "remove", "b1"], "servers.remove_server", {"host_or_address": "b1"}),
        (["servers", "reload"], "servers.reload_config", {}),
        (["info"], "servers.info", {}),
    ],
)
def test_parse_commands(argv: list[str], handler: str, expected: dict[str, Any]) -> None:
    args = parse(*argv)
    module, name = handler.split(".")
    assert args.handler is getattr(HANDLER_MODULES[module], name)
    for key, value in expected.items():
        assert getattr(args, key) == value, key


def test_global_options_before_or_after_the_command() -> None:
    before = parse("--addr", "h:1", "--json", "--deadline-s", "2.5", "--token", "t", "list")
    after = parse("list", "--addr", "h:1", "--json", "--deadline-s", "2.5", "--token", "t")
    for args in (before, after):
        assert (args.addr, args.json, args.deadline_s, args.token) == ("h:1", True, 2.5, "t")
    # A subcommand must not reset what was given before it.
    assert parse("--json", "servers", "add", "http://h:1").json is True
    assert parse("--deadline-s", "3", "idle", "s").deadline_s == 3
    defaults = parse("list")
    assert (defaults.addr, defaults.json, defaults.deadline_s, defaults.token) == (
        None,
        False,
        None,
        None,
    )


def test_tls_options_parse() -> None:
    args = parse("--ca-file", "ca.pem", "--client-cert", "c.pem", "--client-key", "k.pem", "info")
    assert (args.ca_file, args.client_cert, args.client_key) == ("ca.pem", "c.pem", "k.pem")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["get"],
        ["create", "--env", "NOEQUALS"],
        ["create", "--env", "=v"],
        ["resize", "s", "-1", "5"],
        ["resize", "s", "5"],
        ["idle", "s", "--quiet-ms", "4294967296"],
        ["idle", "s", "--timeout-ms", "-1"],
        ["list", "--deadline-s", "0"],
        ["list", "--timeout", "0"],
        ["servers", "frobnicate"],
        ["race", "--exclude", "a"],
        ["race", "--exclude", "b1/@3"],
        ["race", "--exclude", "a@"],
        ["race", "--exclude", "a@-1"],
        ["race", "--exclude", "a@x"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_usage_error_text_is_argparse_own(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["idle", "s", "--quiet-ms", "-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].startswith("usage: wsh idle [-h]")
    assert lines[-1] == "wsh idle: error: argument --quiet-ms: must be between 0 and 4294967295"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--json"], "the following arguments are required: COMMAND"),
        (["--json", "bogus"], "argument COMMAND: invalid choice: 'bogus'"),
        (["idle", "s", "--json", "--quiet-ms", "-1"], "argument --quiet-ms: must be between"),
        (["list", "--json", "--nope"], "unrecognized arguments: --nope"),
        (["--json", "servers", "frobnicate"], "argument ACTION: invalid choice: 'frobnicate'"),
        (["--json", "resize", "s", "5"], "the following arguments are required: COLS"),
    ],
)
def test_usage_errors_with_json_are_a_json_object(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error = json.loads(captured.err)  # one object, no usage text around it
    assert (error["code"], error["reason"], error["metadata"]) == (
        "INVALID_ARGUMENT",
        "USAGE",
        {},
    )
    assert error["message"].startswith(message)
    assert "--help` shows the usage" in error["hint"]


def test_json_after_double_dash_is_text_not_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    # After `--` "--json" is a positional argument (here a bad COLS): text error.
    assert main(["resize", "s", "5", "--", "--json"]) == 2
    assert capsys.readouterr().err.startswith("usage: wsh resize")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "wsh server" in out and "race" in out


def test_bad_address_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--addr", "ftp://h", "list"]) == 2
    assert capsys.readouterr().err.startswith("wsh: error: unsupported scheme")


def test_server_subcommand_is_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 7

    fake = types.ModuleType("wsh.cli.server")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wsh.cli.server", fake)
    assert main(["server", "--listen", "0.0.0.0:1", "--json"]) == 7
    assert seen == [["--listen", "0.0.0.0:1", "--json"]]


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from subparsers(sub)


def test_every_option_has_help() -> None:
    parsers = [*subparsers(build_parser()), server.build_parser()]
    assert len(parsers) > 20
    missing = [
        f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        for parser in parsers
        for action in parser._actions
        # Renamed options are hidden on purpose; subcommand lists carry their own help.
        if not isinstance(action, RenamedOption | argparse._SubParsersAction)
        and not (action.help and action.help != argparse.SUPPRESS)
    ]
    assert missing == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"wsh {wsh.__version__}\n"


def test_help_lists_server_and_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    commands = out.split("positional arguments:")[1].split("options:")[0]
    assert "    server " in commands
    statuses = out.split("exit status:")[1]
    codes = [int(line.split()[0]) for line in statuses.splitlines()[1:12]]
    assert codes == [code for code, _ in EXIT_STATUSES]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("command", ["idle", "race", "run"])
def test_idle_help_says_what_idle_means(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "printed nothing for --quiet-ms milliseconds" in out
    assert "sleep 3" in out and "looks idle" in out
    for bound in ("--quiet-ms MS", "--max-wait-ms MS", "--deadline-s S"):
        assert bound in out
    assert "--timeout" not in out  # the old names are hidden


def test_server_after_global_options_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "server", "--listen", "x"]) == 2
    assert "wsh server --help" in capsys.readouterr().err


def test_renamed_options_still_work_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--timeout", "2", "idle", "s", "--timeout-ms", "100")
    assert (args.deadline_s, args.quiet_ms) == (2, 100)
    assert capsys.readouterr().err.splitlines() == [
        "wsh: warning: --timeout is deprecated, use --deadline-s",
        "wsh: warning: --timeout-ms is deprecated, use --quiet-ms",
    ]
    # The new names print nothing.
    parse("--deadline-s", "2", "run", "s", "x", "--quiet-ms", "100")
    assert capsys.readouterr().err == ""
