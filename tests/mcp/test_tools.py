"""Tool arguments (escapes, keys, sizes) and failures as tool errors."""

from __future__ import annotations

import grpc
import pytest

from wsh.client import WshRpcError
from wsh.defaults import MAX_INPUT_BYTES
from wsh.mcp.errors import rpc_tool_error, tool_error
from wsh.mcp.tools import BadArgument, input_bytes, key_bytes


def test_text_escapes_are_the_clis() -> None:
    assert input_bytes(r"make\n", (), escapes=True) == b"make\n"
    assert input_bytes(r"\x03", (), escapes=True) == b"\x03"
    assert input_bytes(r"a\nb", (), escapes=False) == b"a\\nb"


def test_keys_follow_the_text() -> None:
    assert input_bytes("ls", ["Enter"], escapes=True) == b"ls\r"
    assert input_bytes("", ["Up", "ctrl-c", "C-d", "Ctrl+Z"], escapes=True) == (
        b"\x1b[A\x03\x04\x1a"
    )


def test_an_unknown_key_is_refused_with_the_known_ones() -> None:
    with pytest.raises(BadArgument) as caught:
        key_bytes("Hyper-X")
    assert caught.value.reason == "UNKNOWN_KEY"
    assert "Ctrl-A" in str(caught.value)


def test_a_bad_escape_is_refused() -> None:
    with pytest.raises(BadArgument) as caught:
        input_bytes("\\q", (), escapes=True)
    assert caught.value.reason == "INVALID_ESCAPE"


def test_input_over_the_servers_limit_is_refused_before_it_is_sent() -> None:
    with pytest.raises(BadArgument) as caught:
        input_bytes("x" * (MAX_INPUT_BYTES + 1), (), escapes=False)
    assert caught.value.reason == "INPUT_TOO_LARGE"


def test_a_tool_error_carries_reason_message_hint_and_metadata() -> None:
    result = tool_error(
        "SESSION_AMBIGUOUS",
        "Session 'x' exists on several servers (a, b)",
        code="FAILED_PRECONDITION",
        metadata={"servers": "a, b"},
    )
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("SESSION_AMBIGUOUS: Session 'x'")
    assert "pass `server`" in text
    assert result.structured_content == {
        "code": "FAILED_PRECONDITION",
        "reason": "SESSION_AMBIGUOUS",
        "message": "Session 'x' exists on several servers (a, b)",
        "metadata": {"servers": "a, b"},
        "hint": result.structured_content["hint"],  # type: ignore[index]
    }


def test_an_unreachable_hub_says_so_with_its_address() -> None:
    exc = WshRpcError(grpc.StatusCode.UNAVAILABLE, "", "failed to connect to all addresses")
    result = rpc_tool_error(exc, "127.0.0.1:9")
    assert result.structured_content is not None
    assert result.structured_content["reason"] == "HUB_UNREACHABLE"
    assert "127.0.0.1:9" in result.structured_content["message"]
    assert "wsh server" in result.structured_content["hint"]


def test_control_characters_from_the_hub_are_escaped() -> None:
    exc = WshRpcError(grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", "no \x1b[2J here")
    result = rpc_tool_error(exc, "h:1")
    assert "\x1b" not in result.content[0].text  # type: ignore[union-attr]


def test_nothing_to_send_is_refused() -> None:
    with pytest.raises(BadArgument) as caught:
        input_bytes("", (), escapes=True)
    assert caught.value.reason == "EMPTY_INPUT"
