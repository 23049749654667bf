"""The config file: loading and checking it (wsh.config), editing [[servers]]
in place, and diffing it against the running registry (wsh.federation.config)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from pathlib import Path

import pytest
import tomlkit

from wsh.config import FileConfig, ServerEntry, TlsConfig, load_file
from wsh.errors import Kind, WshError
from wsh.federation.config import add_server, diff_servers, remove_server

SECRET = "s3cr3t-token-value-0123456789"

FULL = f"""\
# wsh config: keep this comment
default_token = "{SECRET}-default"

[server]
hostname = "hub-1"
token = "{SECRET}-own"
scrollback = 500  # a setting write-back leaves alone

[tls]
ca_file = "/etc/wsh/ca.pem"
client_cert = "certs/client.pem"
client_key = "~/client.key"

[[servers]]
address = "http://10.0.1.10:8080"

[[servers]]
address = "https://proxy.example.com/wsh-node-1"
token = "{SECRET}-node"

[ip_access]
allowlist = ["10.0.0.0/8"]
blocklist = ["169.254.0.0/16"]
"""


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def config_error(path: Path) -> WshError:
    with pytest.raises(WshError) as info:
        load_file(path)
    assert info.value.kind is Kind.INVALID_ARGUMENT
    assert info.value.reason == "CONFIG_INVALID"
    assert str(path) in info.value.message
    return info.value


# --- load_file ----------------------------------------------------------------


def test_missing_file_gives_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config.toml"
    assert load_file(path) == FileConfig(path=path)
    assert load_file(path).exists is False


def test_empty_file(tmp_path: Path) -> None:
    config = load_file(write(tmp_path / "c.toml", ""))
    assert config.exists is True
    assert config.servers == ()
    assert config.ip_access is None
    assert config.warnings == ()


def test_full_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", FULL)
    config = load_file(path)
    assert config.exists
    assert config.settings == {
        "hostname": "hub-1",
        "token": f"{SECRET}-own",
        "scrollback_lines": 500,
    }
    assert config.default_token == f"{SECRET}-default"
    assert config.tls == TlsConfig(
        ca_file=Path("/etc/wsh/ca.pem"),
        client_cert=tmp_path / "certs/client.pem",
        client_key=Path("~/client.key").expanduser(),
    )
    assert config.servers == (
        ServerEntry("http://10.0.1.10:8080"),
        ServerEntry("https://proxy.example.com/wsh-node-1", f"{SECRET}-node"),
    )
    assert config.ip_access is not None
    assert config.ip_access.allowlist == (ipaddress.ip_network("10.0.0.0/8"),)
    assert config.ip_access.blocklist == (ipaddress.ip_network("169.254.0.0/16"),)
    assert config.warnings == ()


def test_tokens_stay_out_of_repr(tmp_path: Path) -> None:
    config = load_file(write(tmp_path / "c.toml", FULL))
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.servers)


def test_empty_strings_mean_unset(tmp_path: Path) -> None:
    text = (
        'default_token = ""\n[server]\ntoken = ""\n[[servers]]\naddress = "http://h"\ntoken = ""\n'
    )
    config = load_file(write(tmp_path / "c.toml", text))
    assert config.default_token is None
    assert "token" not in config.settings
    assert config.servers == (ServerEntry("http://h", None),)


def test_empty_ip_access_section_is_configured_but_allows_all(tmp_path: Path) -> None:
    config = load_file(write(tmp_path / "c.toml", "[ip_access]\n"))
    assert config.ip_access is not None
    assert config.ip_access.allows_all


def test_invalid_server_addresses_are_kept_for_the_caller(tmp_path: Path) -> None:
    config = load_file(write(tmp_path / "c.toml", '[[servers]]\naddress = "ftp://x"\n'))
    assert config.servers == (ServerEntry("ftp://x"),)


def test_readable_by_others_warns(tmp_path: Path) -> None:
    for mode in (0o644, 0o640, 0o604):
        path = write(tmp_path / "c.toml", FULL, mode)
        warnings = load_file(path).warnings
        assert len(warnings) == 1
        assert f"config file {path} is readable by other users; it may hold tokens" in warnings[0]
    assert load_file(write(tmp_path / "c.toml", FULL, 0o600)).warnings == ()


def test_unknown_settings_in_owned_sections_warn(tmp_path: Path) -> None:
    text = (
        '[[servers]]\naddress = "http://h"\ntokn = "x"\n'
        '[tls]\nca = "x"\n[ip_access]\nallow = ["10.0.0.0/8"]\n'
        '[server]\nmax_session = 3\nlisten = "0.0.0.0:7600"\n'
    )
    warnings = load_file(write(tmp_path / "c.toml", text)).warnings
    assert sorted(w.removeprefix(f"config file {tmp_path / 'c.toml'}: ") for w in warnings) == [
        "unknown setting ip_access.allow ignored",
        "unknown setting server.listen ignored",
        "unknown setting server.max_session ignored",
        "unknown setting servers[0].tokn ignored",
        "unknown setting tls.ca ignored",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f'default_token = "{SECRET}', "invalid TOML"),
        (f'default_token = "{SECRET}" trailing', "unexpected character"),
        (f"default_token = {SECRET}", "invalid TOML at line 1"),
        (f'default_token = "a\x01{SECRET}"', "invalid TOML"),
        (f'a = 1\n[server]\ntoken = "{SECRET}"\n[server]\n', "already exists"),
    ],
)
def test_invalid_toml_never_shows_tokens(tmp_path: Path, text: str, problem: str) -> None:
    error = config_error(write(tmp_path / "c.toml", text))
    assert problem in error.message
    assert SECRET not in error.message
    # Not even one character of the value.
    assert "'s'" not in error.message
    assert "'t'" not in error.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("default_token = 5", "default_token must be a string, not an integer"),
        ("server = 1", "[server] must be a table, not an integer"),
        ("[server]\nhostname = true", "[server] hostname must be a string, not a boolean"),
        ("[server]\ntoken = [1]", "[server] token must be a string, not an array"),
        ("[server]\nhostname = 'bad host'", "[server] hostname 'bad host' is not a valid"),
        ("[tls]\nca_file = 1.5", "[tls] ca_file must be a string, not a float"),
        ("[tls]\nclient_cert = 'c.pem'", "client_cert and client_key must be given together"),
        ("[tls]\nclient_key = 'k.pem'", "client_cert and client_key must be given together"),
        ("servers = 'x'", "servers must be an array of tables"),
        ("servers = [1]", "servers[0] must be a table, not an integer"),
        ("[[servers]]\ntoken = 'x'", "servers[0] has no address"),
        ("[[servers]]\naddress = 1979-05-27", "servers[0].address must be a string, not a date"),
        (
            "[[servers]]\naddress = 'http://a'\n[[servers]]\naddress = 'http://b'\ntoken = 7",
            "servers[1].token must be a string, not an integer",
        ),
        ("[ip_access]\nallowlist = '10.0.0.0/8'", "[ip_access] allowlist must be an array"),
        ("[ip_access]\nblocklist = [1]", "[ip_access] blocklist must be an array of strings"),
        ("[ip_access]\nblocklist = ['10.0.0.1']", "blocklist entry '10.0.0.1'"),
        ("ip_access = 3", "[ip_access] must be a table"),
    ],
)
def test_wrong_types_and_values(tmp_path: Path, text: str, problem: str) -> None:
    assert problem in config_error(write(tmp_path / "c.toml", text)).message


def test_type_errors_do_not_quote_values(tmp_path: Path) -> None:
    error = config_error(write(tmp_path / "c.toml", f"[server]\ntoken = ['{SECRET}']\n"))
    assert SECRET not in error.message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'default_token = "\xff\xfe"\n')
    assert "not UTF-8" in config_error(path).message


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.toml"
    path.mkdir()
    assert "cannot read it" in config_error(path).message


# --- add_server / remove_server -----------------------------------------------


def test_add_creates_file_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "wsh" / "config.toml"
    assert add_server(path, "http://10.0.0.1:7600", SECRET) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_file(path).servers == (ServerEntry("http://10.0.0.1:7600", SECRET),)


def test_add_keeps_comments_and_other_settings(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", FULL, 0o644)
    assert add_server(path, " http://New-Node:80/ ", None) is True
    text = path.read_text()
    assert text.startswith(FULL.split("[ip_access]")[0])
    assert "# wsh config: keep this comment" in text
    assert "scrollback = 500  # a setting write-back leaves alone" in text
    assert 'allowlist = ["10.0.0.0/8"]' in text
    config = load_file(path)
    assert [s.address for s in config.servers] == [
        "http://10.0.1.10:8080",
        "https://proxy.example.com/wsh-node-1",
        "http://new-node",
    ]
    assert config.servers[2].token is None
    assert config.ip_access is not None
    assert config.settings["hostname"] == "hub-1"


def test_save_sets_mode_0600(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", FULL, 0o644)
    add_server(path, "http://h:1", SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_file(path).warnings == ()


def test_save_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", FULL)
    before = path.stat().st_ino
    add_server(path, "http://h:1")
    assert path.stat().st_ino != before
    # No temp files left behind; only the config and the lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.toml.lock", "c.toml"]


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    real = write(tmp_path / "real.toml", FULL)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    add_server(link, "http://h:1")
    assert link.is_symlink()
    assert "http://h:1" in real.read_text()


async def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    addresses = [f"http://node-{i}:7600" for i in range(24)]
    await asyncio.gather(*(asyncio.to_thread(add_server, path, a) for a in addresses))
    assert sorted(s.address for s in load_file(path).servers) == sorted(addresses)
    await asyncio.gather(*(asyncio.to_thread(remove_server, path, a) for a in addresses[:12]))
    assert sorted(s.address for s in load_file(path).servers) == sorted(addresses[12:])


def test_add_is_idempotent_by_canonical_address(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", FULL)
    before = path.read_text()
    assert add_server(path, "http://10.0.1.10:8080/", "other") is False
    assert add_server(path, "https://proxy.example.com:443/wsh-node-1/") is False
    assert path.read_text() == before


def test_add_writes_canonical_address(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    add_server(path, "http://Node-2:80/prefix/")
    assert load_file(path).servers == (ServerEntry("http://node-2/prefix"),)


def test_add_refuses_invalid_address(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    with pytest.raises(WshError) as info:
        add_server(path, "10.0.0.1:80")
    assert info.value.reason == "ADDRESS_INVALID"
    assert not path.exists()


def test_add_refuses_to_overwrite_a_broken_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "default_token = \n")
    with pytest.raises(WshError) as info:
        add_server(path, "http://h:1")
    assert info.value.reason == "CONFIG_INVALID"
    assert path.read_text() == "default_token = \n"


@pytest.mark.parametrize("text", ["[server]\nhostname = 5\n", "[tls]\nclient_key = 'k'\n"])
def test_add_and_remove_refuse_a_file_the_server_could_not_load(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "c.toml", text + '[[servers]]\naddress = "http://a"\n')
    before = path.read_text()
    with pytest.raises(WshError) as added:
        add_server(path, "http://h:1")
    with pytest.raises(WshError) as removed:
        remove_server(path, "http://a")
    assert added.value.reason == removed.value.reason == "CONFIG_INVALID"
    assert path.read_text() == before


def test_add_to_inline_array_keeps_the_form(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'servers = [{address = "http://a"}]\n[x]\ny = 1\n')
    add_server(path, "http://b", SECRET)
    assert [s.address for s in load_file(path).servers] == ["http://a", "http://b"]
    assert "[[servers]]" not in path.read_text()
    assert tomlkit.parse(path.read_text())["x"] == {"y": 1}


def test_add_to_file_without_servers(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "# only a comment\n[server]\nhostname = 'h1'\n")
    add_server(path, "http://b:2", SECRET)
    config = load_file(path)
    assert config.settings["hostname"] == "h1"
    assert config.servers == (ServerEntry("http://b:2", SECRET),)
    assert path.read_text().startswith("# only a comment\n")


def test_remove_server(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", FULL)
    assert remove_server(path, "https://proxy.example.com:443/wsh-node-1/") is True
    text = path.read_text()
    assert SECRET + "-node" not in text
    assert "# wsh config: keep this comment" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_file(path).servers == (ServerEntry("http://10.0.1.10:8080"),)
    assert remove_server(path, "http://unknown:1") is False


def test_remove_last_server_drops_the_array(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '# c\n[[servers]]\naddress = "http://a"\n[x]\ny = 1\n')
    assert remove_server(path, "http://a:80") is True
    assert "servers" not in path.read_text()
    assert load_file(path).servers == ()
    assert tomlkit.parse(path.read_text())["x"] == {"y": 1}


def test_remove_an_invalid_entry_by_its_text(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[[servers]]\naddress = "ftp://x"\n')
    assert remove_server(path, " ftp://x ") is True
    assert load_file(path).servers == ()


def test_remove_from_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "c.toml"
    assert remove_server(path, "http://a") is False
    assert not path.parent.exists()


def test_write_failure_is_reported_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "c.toml", FULL)

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(WshError) as info:
        add_server(path, "http://h:1", SECRET)
    assert info.value.kind is Kind.FAILED_PRECONDITION
    assert info.value.reason == "CONFIG_WRITE_FAILED"
    assert info.value.message == f"Cannot write config file {path}: No space left on device."
    assert path.read_text() == FULL
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.toml.lock", "c.toml"]


# --- diff_servers -------------------------------------------------------------


def test_diff_add_remove_update() -> None:
    running = {"http://a": None, "http://b:7600": "tb", "http://c": "tc"}
    wanted = [
        ServerEntry("http://a:80/"),  # unchanged, other spelling
        ServerEntry("http://b:7600", "tb2"),  # token changed
        ServerEntry("http://D:1", "td"),  # new
    ]
    diff = diff_servers(running, wanted)
    assert diff.added == [ServerEntry("http://d:1", "td")]
    assert diff.removed == ["http://c"]
    assert diff.updated == [ServerEntry("http://b:7600", "tb2")]
    assert diff.invalid == []


def test_diff_token_removed_counts_as_update() -> None:
    diff = diff_servers({"http://a": "t"}, [ServerEntry("http://a")])
    assert diff.updated == [ServerEntry("http://a", None)]
    assert diff.added == []
    assert diff.removed == []


def test_diff_removed_keeps_running_keys_as_given() -> None:
    diff = diff_servers({"http://A:80/": None}, [])
    assert diff.removed == ["http://A:80/"]
    assert diff_servers({"http://A:80/": None}, [ServerEntry("http://a")]).removed == []


def test_diff_invalid_and_duplicate_entries() -> None:
    wanted = [
        ServerEntry("http://a"),
        ServerEntry("ftp://x"),
        ServerEntry("http://a:80", "other"),
    ]
    diff = diff_servers({}, wanted)
    assert diff.added == [ServerEntry("http://a")]
    assert [address for address, _ in diff.invalid] == ["ftp://x", "http://a:80"]
    assert "http or https" in diff.invalid[0][1]
    assert "repeats 'http://a'" in diff.invalid[1][1]


def test_diff_invalid_entry_does_not_keep_a_running_backend() -> None:
    diff = diff_servers({"http://a": None}, [ServerEntry("a")])
    assert diff.removed == ["http://a"]
    assert diff.invalid[0][0] == "a"


def test_diff_empty() -> None:
    diff = diff_servers({}, [])
    assert (diff.added, diff.removed, diff.updated, diff.invalid) == ([], [], [], [])
