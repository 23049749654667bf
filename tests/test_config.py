"""The server's config (wsh.config): flag > environment > file > default for
every setting, errors that name their source, reload, and docs/CONFIG.md."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.calls import expect_error
from tests.procs import REPO, ServerProc, stub
from wsh import defaults
from wsh.config import (
    DEFAULT_MAX_BACKENDS,
    SETTINGS,
    ConfigError,
    ServerConfig,
    build_config,
    reload_file,
)
from wsh.errors import WshError
from wsh.text import printable
from wsh.v1 import hub_pb2

TOKEN = "correct-horse-battery-staple-42"

# (setting, flag text, environment text, file TOML, the typed value of each).
CASES = [
    ("max_sessions", "--max-sessions", "WSH_MAX_SESSIONS", "max_sessions", ("7", "8", "9"),
     (7, 8, 9), defaults.MAX_SESSIONS),
    ("log_level", "--log-level", "WSH_LOG", "log_level", ("debug", "ERROR", '"warning"'),
     ("DEBUG", "ERROR", "WARNING"), "INFO"),
    ("hostname", "--hostname", "WSH_HOSTNAME", "hostname", ("from-flag", "from-env", '"from-file"'),
     ("from-flag", "from-env", "from-file"), None),
    ("exited_retention_s", "--exited-retention", "WSH_EXITED_RETENTION", "exited_retention",
     ("1.5", "2", "3"), (1.5, 2.0, 3.0), defaults.EXITED_RETENTION_S),
    ("max_backends", "--max-backends", "WSH_MAX_BACKENDS", "max_backends", ("4", "5", "6"),
     (4, 5, 6), DEFAULT_MAX_BACKENDS),
]  # fmt: skip


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def build(
    tmp_path: Path,
    flags: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    file: str = "",
) -> ServerConfig:
    config = write(tmp_path / "c.toml", file)
    return build_config({"config_path": str(config), **(flags or {})}, env or {})


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize(
    "given", list(itertools.product([False, True], repeat=3)), ids=lambda g: repr(g)
)
def test_flag_over_environment_over_file_over_default(
    tmp_path: Path,
    case: tuple[str, str, str, str, tuple[str, str, str], tuple[object, ...], object],
    given: tuple[bool, bool, bool],
) -> None:
    name, _flag, env_var, key, (flag_text, env_text, toml), values, default = case
    in_flag, in_env, in_file = given
    config = build(
        tmp_path,
        flags={name: flag_text} if in_flag else {},
        env={env_var: env_text} if in_env else {},
        file=f"[server]\n{key} = {toml}\n" if in_file else "",
    )
    expected = next(
        (value for present, value in zip(given, values, strict=True) if present), default
    )
    assert getattr(config, name) == expected


@pytest.mark.parametrize(
    ("flags", "env", "file", "expected"),
    [
        ({}, {}, "", False),
        ({}, {}, "[server]\nstrict_routing = true\n", True),
        ({}, {"WSH_STRICT_ROUTING": "no"}, "[server]\nstrict_routing = true\n", False),
        ({"strict_routing": False}, {"WSH_STRICT_ROUTING": "yes"}, "", False),
        ({"strict_routing": True}, {"WSH_STRICT_ROUTING": "0"}, "", True),
        ({}, {"WSH_STRICT_ROUTING": "1"}, "", True),
    ],
)
def test_switches_can_be_turned_off_by_a_stronger_source(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], file: str, expected: bool
) -> None:
    assert build(tmp_path, flags, env, file).strict_routing is expected


def test_empty_variables_are_unset(tmp_path: Path) -> None:
    config = build(tmp_path, env={"WSH_TOKEN": "", "WSH_LOG": "", "WSH_MAX_SESSIONS": ""})
    assert (config.token, config.log_level, config.max_sessions) == (None, "INFO", 256)


def test_file_paths_are_relative_to_the_file_and_flags_to_the_cwd(tmp_path: Path) -> None:
    text = '[server]\ntls_cert = "certs/c.pem"\ntls_key = "/k.pem"\n'
    config = build(tmp_path, file=text)
    assert (config.tls_cert, config.tls_key) == (tmp_path / "certs/c.pem", Path("/k.pem"))
    config = build(tmp_path, flags={"tls_cert": "c.pem"}, file=text)
    assert config.tls_cert == Path("c.pem")


@pytest.mark.parametrize(
    ("flags", "env", "source", "problem"),
    [
        ({"max_sessions": "many"}, {}, "--max-sessions", "'many' is not an integer"),
        ({}, {"WSH_MAX_SESSIONS": "0"}, "WSH_MAX_SESSIONS", "must be at least 1"),
        ({}, {"WSH_LOG": "foo"}, "WSH_LOG", "'foo' is not one of DEBUG, INFO"),
        ({"log_level": "loud"}, {}, "--log-level", "'loud' is not one of"),
        ({}, {"WSH_STRICT_ROUTING": "maybe"}, "WSH_STRICT_ROUTING", "'maybe' is not a boolean"),
        ({}, {"WSH_HOSTNAME": "bad host"}, "WSH_HOSTNAME", "'bad host' is not a valid hostname"),
        ({"exited_retention_s": "nan"}, {}, "--exited-retention", "must be a finite number"),
        ({"scrollback_bytes": "-1"}, {}, "--scrollback-bytes", "must be at least 0"),
        ({}, {"WSH_MAX_CONNECTIONS": "1.5"}, "WSH_MAX_CONNECTIONS", "is not an integer"),
        ({"token": TOKEN, "token_file": "t"}, {}, "--token", "not both"),
        ({}, {"WSH_TOKEN": TOKEN, "WSH_TOKEN_FILE": "t"}, "WSH_TOKEN", "not both"),
        ({"tls_cert": "c.pem"}, {}, "--tls-cert", "go together"),
        ({}, {"WSH_TLS_KEY": "k.pem"}, "WSH_TLS_KEY", "go together"),
        ({"tls_client_ca": "ca.pem"}, {}, "--tls-client-ca", "needs a TLS certificate"),
    ],
)
def test_bad_flags_and_variables_name_their_source(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], source: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, flags, env)
    assert info.value.source == source
    assert problem in info.value.problem
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[server]\nmax_sessions = 0\n", "[server] max_sessions must be at least 1"),
        (
            '[server]\nmax_sessions = "5"\n',
            "[server] max_sessions must be an integer, not a string",
        ),
        ("[server]\nlog_level = 'foo'\n", "[server] log_level 'foo' is not one of"),
        ("[server]\nstrict_routing = 1\n", "[server] strict_routing must be a boolean"),
        ("[server]\nexited_retention = 'long'\n", "[server] exited_retention must be a number"),
        (f"[server]\ntoken = '{TOKEN}'\ntoken_file = 't'\n", "token and token_file"),
    ],
)
def test_bad_file_values_name_the_file_and_key(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(WshError) as info:
        build(tmp_path, file=text)
    assert info.value.reason == "CONFIG_INVALID"
    assert str(tmp_path / "c.toml") in info.value.message
    assert problem in info.value.message
    assert TOKEN not in info.value.message


def test_tls_pair_across_sources_is_checked_once_resolved(tmp_path: Path) -> None:
    file = '[server]\ntls_cert = "c.pem"\n'
    with pytest.raises(ConfigError) as info:
        build(tmp_path, file=file)
    assert info.value.source == f"config file {tmp_path / 'c.toml'} [server] tls_cert"
    config = build(tmp_path, env={"WSH_TLS_KEY": "/k.pem"}, file=file)
    assert (config.tls_cert, config.tls_key) == (tmp_path / "c.pem", Path("/k.pem"))


def test_token_precedence_and_files(tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", f"  {TOKEN}-file \nignored\n")
    file = f'[server]\ntoken = "{TOKEN}-conf"\n'
    assert build(tmp_path, file=file).token == f"{TOKEN}-conf"
    config = build(tmp_path, env={"WSH_TOKEN": f"{TOKEN}-env"}, file=file)
    assert (config.token, config.warnings) == (f"{TOKEN}-env", ())
    config = build(tmp_path, env={"WSH_TOKEN_FILE": str(token_file)}, file=file)
    assert config.token == f"{TOKEN}-file"
    config = build(tmp_path, {"token_file": str(token_file)}, {"WSH_TOKEN": "x" * 16})
    assert config.token == f"{TOKEN}-file"
    config = build(tmp_path, file="[server]\ntoken_file = 'token'\n")
    assert config.token == f"{TOKEN}-file"
    # On the command line: visible in ps, so one warning, without the token.
    config = build(tmp_path, {"token": f"{TOKEN}-flag"}, {"WSH_TOKEN_FILE": str(token_file)})
    assert config.token == f"{TOKEN}-flag"
    assert len(config.warnings) == 1 and "visible to every user" in config.warnings[0]
    assert TOKEN not in repr(config)
    token_file.chmod(0o644)
    config = build(tmp_path, {"token_file": str(token_file)})
    assert any("readable by other users" in w for w in config.warnings)
    with pytest.raises(WshError) as info:
        build(tmp_path, {"token_file": str(tmp_path / "missing")})
    assert info.value.reason == "TOKEN_FILE"


def test_config_path_default_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    env = {"WSH_LISTEN": "127.0.0.1:7612"}
    config = build_config({}, env)
    assert config.config_path == tmp_path / "xdg" / "wsh" / "server-127.0.0.1-7612.toml"
    assert build_config({"listen": "127.0.0.1:0"}, env).config_path is None
    other = write(tmp_path / "other.toml", "[server]\nmax_sessions = 3\n")
    config = build_config({}, {**env, "WSH_CONFIG": str(other), "WSH_MAX_SESSIONS": ""})
    assert (config.config_path, config.max_sessions) == (other, 3)


def test_reload_reads_the_file_again_under_the_same_flags(tmp_path: Path) -> None:
    config = build(
        tmp_path,
        flags={"max_sessions": "9"},
        file='[server]\nmax_backends = 2\nmax_sessions = 1\n[[servers]]\naddress = "http://a"\n',
    )
    assert (config.max_backends, config.max_sessions) == (2, 9)
    write(
        tmp_path / "c.toml",
        "[server]\nmax_backends = 3\nmax_sessions = 4\ndefault_token = 1\n"
        '[[servers]]\naddress = "http://b"\n[ip_access]\n',
    )
    fresh = reload_file(config)
    # default_token outside [server] only: inside it is an unknown key, warned about.
    assert (fresh.max_backends, fresh.max_sessions) == (3, 9)
    assert [s.address for s in fresh.servers] == ["http://b"]
    assert fresh.ip_access is not None
    assert any("server.default_token" in w for w in fresh.warnings)
    pinned = build(tmp_path, env={"WSH_MAX_BACKENDS": "7"})
    assert reload_file(pinned).max_backends == 7
    write(tmp_path / "c.toml", "[server]\nmax_backends = 'x'\n")
    with pytest.raises(WshError) as info:
        reload_file(config)
    assert info.value.reason == "CONFIG_INVALID"


def test_docs_list_every_setting() -> None:
    text = (REPO / "docs" / "CONFIG.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for setting in SETTINGS:
        cells = [f"`{setting.flag}`", f"`{setting.env}`"]
        if setting.key:
            cells.append(f"`{setting.key}`")
        assert any(all(cell in row for cell in cells) for row in rows), setting.name


def run_server(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WSH_")}
    return subprocess.run(
        [sys.executable, "-m", "wsh", "server", "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **env},
        cwd=REPO,
        check=False,
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        ((), {"WSH_LOG": "foo"}, "WSH_LOG"),
        (("--log-level", "foo"), {}, "--log-level"),
        ((), {"WSH_MAX_SESSIONS": "lots"}, "WSH_MAX_SESSIONS"),
    ],
)
def test_bad_flag_or_variable_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], source: str
) -> None:
    done = run_server("--config", str(tmp_path / "c.toml"), *args, env=env)
    assert done.returncode == 2, done.stderr
    assert f"wsh server: error: {source}: " in done.stderr
    assert done.stderr.startswith("usage: wsh server")
    assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_bad_file_value_is_a_clean_start_failure(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[server]\nmax_sessions = -1\n")
    done = run_server("--config", str(config), env={})
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"wsh server: CONFIG_INVALID: Config file {config}: "
        "[server] max_sessions must be at least 1.\n"
    )


@pytest.mark.e2e
def test_file_and_variable_settings_reach_a_running_server(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[server]\nmax_sessions = 5\nlog_level = "warning"\n')
    log = tmp_path / "server.log"
    env = {"WSH_MAX_SESSIONS": "1", "WSH_TOKEN": ""}
    with ServerProc("configured", "--config", str(config), env=env, log_path=log) as proc:
        channel, hub = stub(proc.addr)
        with channel:
            hub.CreateSession(hub_pb2.CreateSessionRequest(name="one", command="cat"), timeout=15)
            expect_error(
                lambda: hub.CreateSession(
                    hub_pb2.CreateSessionRequest(name="two", command="cat"), timeout=15
                ),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_SESSIONS",
            )
    # The file's log level: the INFO lines a server logs at start are left out.
    assert " INFO " not in log.read_text()


def test_one_printable_for_logs_and_terminals() -> None:
    text = "a\x1b]52;c\\ \u200d" + "x" * 200
    logged = printable(text)
    assert logged.startswith("a\\x1b]52;c\\\\ \\u200d") and len(logged) < 150
    assert printable(text, limit=None, terminal=True) == "a\ufffd]52;c\\ \u200d" + "x" * 200


def test_discovery_entries_and_flag(tmp_path: Path) -> None:
    file = (
        '[[discovery]]\nname = "b.wsh.test"\nport = 7700\nnameserver = "127.0.0.1:5353"\n'
        'interval = 2\ngrace = 0\n\n[[discovery]]\nname = "_wsh._tcp.b.wsh.test"\ntype = "srv"\n'
    )
    config = build(tmp_path, flags={"discover": "k.wsh.test:7601"}, file=file)
    a, srv, flag = config.discovery
    assert (a.name, a.srv, a.port, a.nameserver, a.interval_s, a.grace_s) == (
        "b.wsh.test", False, 7700, "127.0.0.1:5353", 2.0, 0.0,
    )  # fmt: skip
    assert (srv.srv, flag.name, flag.port) == (True, "k.wsh.test", 7601)
    assert not config.servers
    assert build(tmp_path, flags={"discover": "_wsh._tcp.x.test"}).discovery[-1].srv


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("port = 1\n", "discovery[0].name must be a DNS name"),
        ('name = "a.test"\ntype = "MX"\n', "type must be A"),
        ('name = "a.test"\nnameserver = "dns.example"\n', "must be an IP address"),
        ('name = "a.test"\ninterval = 0\n', "interval must be at least 1"),
        ('name = "a.test"\nport = 70000\n', "port must be a port number"),
    ],
)
def test_bad_discovery_entries(tmp_path: Path, entry: str, problem: str) -> None:
    with pytest.raises(WshError) as info:
        build(tmp_path, file="[[discovery]]\n" + entry)
    assert info.value.reason == "CONFIG_INVALID"
    assert problem in info.value.message


def test_bad_discover_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--discover: 'nope' is not NAME:PORT"):
        build(tmp_path, flags={"discover": "nope"})
