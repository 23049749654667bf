"""Backend address parsing: what is accepted, how it is canonicalised, and
every form that is refused."""

from __future__ import annotations

import dataclasses

import pytest

from wsh.errors import Kind, WshError
from wsh.federation.address import MAX_ADDRESS_LEN, BackendAddress, parse_backend_address


def refused(text: str) -> WshError:
    with pytest.raises(WshError) as info:
        parse_backend_address(text)
    error = info.value
    assert error.kind is Kind.INVALID_ARGUMENT
    assert error.reason == "ADDRESS_INVALID"
    return error


@pytest.mark.parametrize(
    ("text", "scheme", "host", "port", "prefix"),
    [
        ("http://10.0.1.10:8080", "http", "10.0.1.10", 8080, ""),
        ("http://backend", "http", "backend", 80, ""),
        ("https://backend", "https", "backend", 443, ""),
        ("https://backend:8443", "https", "backend", 8443, ""),
        ("http://localhost:7600", "http", "localhost", 7600, ""),
        ("http://127.0.0.1:7600", "http", "127.0.0.1", 7600, ""),
        ("http://192.168.1.5:1", "http", "192.168.1.5", 1, ""),
        ("http://h:65535", "http", "h", 65535, ""),
        ("http://[::1]:7600", "http", "::1", 7600, ""),
        ("https://[::1]", "https", "::1", 443, ""),
        ("http://[::1]:", "http", "::1", 80, ""),
        ("http://[2001:DB8:0:0::1]:9", "http", "2001:db8::1", 9, ""),
        ("http://Backend.Example.COM:1", "http", "backend.example.com", 1, ""),
        ("https://proxy.example.com/wsh-node-1", "https", "proxy.example.com", 443, "/wsh-node-1"),
        ("http://h:1/a/b.c/d_e~f/", "http", "h", 1, "/a/b.c/d_e~f"),
        ("http://h/", "http", "h", 80, ""),
        ("http://h:/", "http", "h", 80, ""),
        ("http://h:0080", "http", "h", 80, ""),
        ("  http://h:1/p \n", "http", "h", 1, "/p"),
    ],
)
def test_accepted_forms(text: str, scheme: str, host: str, port: int, prefix: str) -> None:
    address = parse_backend_address(text)
    assert (address.scheme, address.host, address.port, address.path_prefix) == (
        scheme,
        host,
        port,
        prefix,
    )


@pytest.mark.parametrize(
    ("text", "url", "target"),
    [
        ("http://h:80/", "http://h", "h:80"),
        ("http://h:8080", "http://h:8080", "h:8080"),
        ("https://h:443", "https://h", "h:443"),
        ("https://h:80", "https://h:80", "h:80"),
        ("http://h:443", "http://h:443", "h:443"),
        ("http://[::1]:80", "http://[::1]", "[::1]:80"),
        ("https://[0:0::1]:7600/x/", "https://[::1]:7600/x", "[::1]:7600"),
        ("http://H.Example:7600/Node-1", "http://h.example:7600/Node-1", "h.example:7600"),
    ],
)
def test_canonical_url_and_grpc_target(text: str, url: str, target: str) -> None:
    address = parse_backend_address(text)
    assert address.url == url
    assert str(address) == url
    assert address.grpc_target == target
    # The canonical URL parses back to the same address.
    assert parse_backend_address(address.url) == address


def test_spellings_of_one_backend_compare_equal() -> None:
    spellings = ["http://h", "http://h:80", "http://h/", "http://H:80/", " http://h "]
    assert len({parse_backend_address(s) for s in spellings}) == 1
    assert parse_backend_address("http://h") != parse_backend_address("https://h")
    assert parse_backend_address("http://h/a") != parse_backend_address("http://h/b")


def test_tls_follows_the_scheme() -> None:
    assert parse_backend_address("https://h").tls is True
    assert parse_backend_address("http://h:443").tls is False


def test_address_is_frozen() -> None:
    address = BackendAddress(scheme="http", host="h", port=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        address.port = 2  # type: ignore[misc]


def test_no_scheme_hints_http() -> None:
    error = refused("10.0.0.1:7600")
    assert "did you mean 'http://10.0.0.1:7600'?" in error.message
    assert "'10.0.0.1:7600'" in error.message


def test_no_scheme_hint_uses_stripped_text() -> None:
    assert "did you mean 'http://backend'?" in refused("  backend ").message


def test_uppercase_scheme_refused_with_hint() -> None:
    # RFC 3986 calls schemes case-insensitive, but the rule here is the
    # literal lower-case prefix; the hint gives the fix.
    error = refused("HTTP://h:1")
    assert "lower-case" in error.message
    assert "did you mean 'http://h:1'?" in error.message
    assert "did you mean 'https://h'?" in refused("Https://h").message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://h", "http or https, not 'ftp'"),
        ("file:///etc/passwd", "http or https, not 'file'"),
        ("ws://h:1", "http or https"),
        ("://h", "http or https"),
        ("http://", "no host"),
        ("https://", "no host"),
        ("http:///x", "no host"),
        ("http://:80", "no host"),
        ("http://h:abc", "port 'abc'"),
        ("http://h:99999", "port '99999'"),
        ("http://h:65536", "port '65536'"),
        ("http://h:0", "port '0'"),
        ("http://h:-1", "port '-1'"),
        ("http://h:+80", "port '+80'"),
        ("http://h: 80", "port ' 80'"),
        ("http://h:٨٠", "port"),
        ("http://h:0000080", "port"),
        ("http://::1:80", "in brackets"),
        ("http://::1", "in brackets"),
        ("http://[::1]x", "unexpected 'x'"),
        ("http://[::1]:x", "port 'x'"),
        ("http://[::1", "never closed"),
        ("http://[nothex]:1", "not an IPv6 address"),
        ("http://[10.0.0.1]:1", "not an IPv6 address"),
        ("http://[fe80::1%25eth0]:1", "zone"),
        ("http://0.0.0.0:1", "unspecified address 0.0.0.0"),
        ("http://0.0.0.0", "unspecified"),
        ("http://[::]:1", "unspecified address ::"),
        ("http://[0:0:0:0:0:0:0:0]:1", "unspecified"),
        ("http://[::ffff:0.0.0.0]:1", "unspecified"),
        ("http://u@h:1", "user info"),
        ("http://u:p@h:1", "user info"),
        ("http://h:1?q", "query"),
        ("http://h:1/p?q=1", "query"),
        ("http://h:1#frag", "fragments"),
        ("http://h h:1", "not a valid host name"),
        ("http://h_x:1", "not a valid host name"),
        ("http://-h:1", "not a valid host name"),
        ("http://h.:1", "not a valid host name"),
        ("http://bäckend:1", "not ASCII"),
        ("http://\u212aey:1", "not ASCII"),
        ("http://0:80", "neither a host name nor a dotted IPv4"),
        ("http://0x7f.1:80", "dotted IPv4"),
        ("http://2130706433:80", "dotted IPv4"),
        ("http://127.1:80", "dotted IPv4"),
        ("http://999.1.1.1:80", "dotted IPv4"),
        ("http://010.0.0.1:80", "dotted IPv4"),
        ("http://h:1//", "path segment ''"),
        ("http://h:1/a//b", "path segment ''"),
        ("http://h:1/a/../b", "path segment '..'"),
        ("http://h:1/./b", "path segment '.'"),
        ("http://h:1/a%20b", "path segment 'a%20b'"),
        ("http://h:1/a b", "path segment 'a b'"),
        ("http://h:1/" + "a" * MAX_ADDRESS_LEN, "longer than"),
    ],
)
def test_refused_forms(text: str, problem: str) -> None:
    error = refused(text)
    assert problem in error.message
    assert error.message.startswith(f"Invalid backend address '{text.strip()[:128]}")


def test_message_escapes_control_characters() -> None:
    error = refused("http://h\x1b[31m:1")
    assert "\x1b" not in error.message
    assert "\\x1b" in error.message
    assert "\x1b" not in error.metadata["address"]


def test_message_caps_long_addresses() -> None:
    error = refused("ftp://" + "x" * 5000)
    assert len(error.message) < 400


def test_hostname_like_names_ending_in_letters_are_names() -> None:
    # Only a numeric last label makes resolvers read the host as an IPv4 number.
    assert parse_backend_address("http://1.2.3.example:1").host == "1.2.3.example"
    assert parse_backend_address("http://node-0x1:1").host == "node-0x1"
