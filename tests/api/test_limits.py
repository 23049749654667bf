"""Unit tests of per-peer stream limits and the failed-auth table."""

from __future__ import annotations

import pytest

from wsh.api import limits
from wsh.api.limits import AuthFailures, StreamLimits, peer_key
from wsh.errors import WshError


def test_peer_key_drops_the_port() -> None:
    assert peer_key("ipv4:10.1.2.3:5555") == "ipv4:10.1.2.3"
    assert peer_key("ipv6:[::1]:5555") == "ipv6:[::1]"
    assert peer_key("unix:/tmp/x.sock") == "unix"


def test_stream_limits_cap_per_peer_and_release() -> None:
    caps = StreamLimits()
    cap = StreamLimits.CAPS["Link"]
    held = [caps.hold("ipv4:1.1.1.1:1", "Link") for _ in range(cap)]
    for h in held:
        h.__enter__()
    with pytest.raises(WshError) as info, caps.hold("ipv4:1.1.1.1:2", "Link"):
        pass
    assert info.value.reason == "TOO_MANY_STREAMS"
    with caps.hold("ipv4:2.2.2.2:1", "Link"):  # another client is not affected
        assert caps.total("Link") == cap + 1
    for h in held:
        h.__exit__(None, None, None)
    assert caps.total("Link") == 0


def test_auth_failures_throttle_one_peer_only_and_decay(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    failures = AuthFailures()
    for _ in range(limits.AUTH_FAILURES_ALLOWED):
        failures.check("ipv4:6.6.6.6:1")
        failures.failed("ipv4:6.6.6.6:1")
    with pytest.raises(WshError) as info:
        failures.check("ipv4:6.6.6.6:9")
    assert info.value.reason == "AUTH_RATE_LIMITED"
    failures.check("ipv4:7.7.7.7:1")  # others are not slowed down
    now[0] += limits.AUTH_WINDOW_S
    failures.check("ipv4:6.6.6.6:9")  # forgiven after a quiet window


def test_auth_failures_remember_a_bounded_number_of_peers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_TRACKED_PEERS", 50)
    failures = AuthFailures()
    for i in range(500):
        failures.failed(f"ipv4:10.0.{i // 250}.{i % 250}:1")
    assert len(failures._peers) == 50
