"""Checks on everything a backend sends before it reaches a client: its
identity, inventory and activity on the Link, and every answer it gives to
a forwarded call (sessions, screens, idles, scrollback pages).

A backend is as untrusted as a client: a compromised or buggy one must not
inject names that break routing, flood the hub with entries, or smuggle
terminal escape sequences into a log or an error message. Values that are
merely too long to be useful (a command line, a directory) are cut short;
values that cannot be right refuse the whole message, with
:class:`BackendGarbage`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from wsh import convert
from wsh.defaults import MAX_DIMENSION, SCROLLBACK_PAGE_MAX
from wsh.errors import Kind, WshError
from wsh.names import MAX_TAGS, is_valid_hostname, is_valid_session_name, is_valid_tag
from wsh.sessions.info import SessionInfo, SessionState
from wsh.text import printable, quote
from wsh.v1 import hub_pb2, types_pb2

MAX_REMOTE_SESSIONS = 10_000
MAX_TEXT_LEN = 4096
MAX_VERSION_LEN = 64
# A foreground command name: the kernel's own are 15 bytes.
MAX_FOREGROUND_LEN = 64
_SERVER_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


class BackendGarbage(WshError):
    """A backend sent something that cannot be right; to clients the backend
    is unavailable (UNAVAILABLE, reason BACKEND_INVALID)."""

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(Kind.UNAVAILABLE, "BACKEND_INVALID", message, metadata)


def _from(backend: str | None) -> str:
    return f"Backend {quote(backend)}" if backend else "A backend"


def check_identity(
    hostname: str, server_id: str, version: str, *, backend: str | None = None
) -> tuple[str, str, str]:
    """Check a backend's identity message and return it unchanged.

    ``backend`` (its address) only names the backend in error messages.
    """
    if not is_valid_hostname(hostname):
        raise BackendGarbage(
            f"{_from(backend)} reported an invalid hostname {quote(hostname)}; "
            "hostnames are RFC 1123 labels of letters, digits and '-'."
        )
    if not _SERVER_ID.fullmatch(server_id):
        raise BackendGarbage(
            f"{_from(backend)} reported an invalid server ID {quote(server_id)}; "
            "expected 1-64 letters, digits or '-'."
        )
    if len(version) > MAX_VERSION_LEN or not version.isprintable():
        raise BackendGarbage(
            f"{_from(backend)} reported an invalid version {quote(version)}; "
            f"expected at most {MAX_VERSION_LEN} printable characters."
        )
    return hostname, server_id, version


def check_name(name: str, backend_hostname: str) -> str:
    """Check a session name a backend sent."""
    if not is_valid_session_name(name):
        raise BackendGarbage(
            f"{_from(backend_hostname)} sent a session with an invalid name {quote(name)}.",
            server=printable(backend_hostname),
        )
    return name


def check_session(info: SessionInfo, backend_hostname: str) -> SessionInfo:
    """Check one session a backend reported; return the version to pass on.

    ``server`` is set to ``backend_hostname`` whatever the backend claimed, so
    a backend cannot pass its sessions off as another server's. Tags come back
    sorted and without duplicates; a command or directory longer than 4096
    characters is cut short; an exit code on a running session is dropped.
    """
    check_name(info.name, backend_hostname)

    def require(ok: bool, problem: str) -> None:
        if not ok:
            raise BackendGarbage(
                f"{_from(backend_hostname)} sent session {quote(info.name)} with {problem}.",
                server=printable(backend_hostname),
            )

    require(len(info.tags) <= MAX_TAGS, f"{len(info.tags)} tags (at most {MAX_TAGS})")
    for tag in info.tags:
        require(is_valid_tag(tag), f"an invalid tag {quote(tag)}")
    require(1 <= info.rows <= MAX_DIMENSION, f"{info.rows} rows (1 to {MAX_DIMENSION})")
    require(1 <= info.cols <= MAX_DIMENSION, f"{info.cols} columns (1 to {MAX_DIMENSION})")
    require(0 <= info.pid <= _INT32_MAX, f"an invalid pid {info.pid}")
    require(
        info.exit_code is None or _INT32_MIN <= info.exit_code <= _INT32_MAX,
        f"an invalid exit code {info.exit_code}",
    )
    require(0 <= info.generation <= _INT64_MAX, f"an invalid generation {info.generation}")
    require(
        0 <= info.last_activity_ms <= _INT64_MAX,
        f"an invalid idle time {info.last_activity_ms} ms",
    )
    require(math.isfinite(info.created_at), f"an invalid creation time {info.created_at}")
    return dataclasses.replace(
        info,
        server=backend_hostname,
        tags=tuple(sorted(set(info.tags))),
        command=info.command[:MAX_TEXT_LEN],
        cwd=info.cwd[:MAX_TEXT_LEN],
        exit_code=None if info.state is SessionState.RUNNING else info.exit_code,
        foreground=clean_foreground(info.foreground),
    )


def clean_foreground(name: str) -> str:
    """A foreground command name a backend sent: any program can name itself
    anything (``prctl(PR_SET_NAME)``), so it is cut to 64 characters and
    its non-printable characters escaped, never refused."""
    return printable(name, MAX_FOREGROUND_LEN)


def check_activity(generation: int, idle_ms: int, backend_hostname: str) -> None:
    """Check the generation and idle time a heartbeat reported for a session:
    within the same bounds as a session's own (see :func:`check_session`)."""
    if not (0 <= generation <= _INT64_MAX and 0 <= idle_ms <= _INT64_MAX):
        raise BackendGarbage(
            f"{_from(backend_hostname)} reported activity with generation {generation} "
            f"and idle time {idle_ms} ms.",
            server=printable(backend_hostname),
        )


def check_inventory(infos: list[SessionInfo], backend_hostname: str) -> list[SessionInfo]:
    """Check a backend's whole session list: at most ``MAX_REMOTE_SESSIONS``
    entries, each valid (see :func:`check_session`), no name twice. One bad
    entry refuses the whole list, since the rest of it cannot be trusted."""
    check_count(
        len(infos), MAX_REMOTE_SESSIONS, what="sessions in its inventory", backend=backend_hostname
    )
    checked = [check_session(info, backend_hostname) for info in infos]
    seen: set[str] = set()
    for info in checked:
        if info.name in seen:
            raise BackendGarbage(
                f"{_from(backend_hostname)} listed session {quote(info.name)} twice.",
                server=printable(backend_hostname),
            )
        seen.add(info.name)
    return checked


def check_count(n: int, limit: int, *, what: str = "items", backend: str | None = None) -> int:
    """Check that a count a backend sent (or the length of a list it sent) is
    within ``0..limit``; return it. ``what`` and ``backend`` word the message."""
    if not 0 <= n <= limit:
        raise BackendGarbage(f"{_from(backend)} sent {n} {what}; at most {limit} are allowed.")
    return n


# -- answers to forwarded calls ---------------------------------------------------


def clean_session(pb: types_pb2.Session, hostname: str, name: str = "") -> types_pb2.Session:
    """A session a backend sent, checked; ``name``, when given, is the one asked about."""
    _check_asked(pb.name, name, hostname)
    return convert.session_to_pb(check_session(convert.session_from_pb(pb), hostname))


def _check_asked(got: str, asked: str, hostname: str) -> None:
    if asked and got != asked:
        raise BackendGarbage(
            f"Backend {quote(hostname)} answered about session {quote(got)} "
            f"when asked about {quote(asked)}."
        )


# A terminal screen holds text only: a control character in a line was made up.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _check_lines(lines: Any, limit: int, width: int, what: str, hostname: str) -> None:
    check_count(len(lines), limit, what=what, backend=hostname)
    # A line holds at most `width` cells; combining characters and wide
    # glyphs stay well within four code points a cell.
    for line in lines:
        if len(line) > 4 * width:
            raise BackendGarbage(
                f"Backend {hostname!r} sent a line of {len(line)} characters for {width} columns."
            )
        if _CONTROL.search(line):
            raise BackendGarbage(
                f"Backend {hostname!r} sent a line with control characters: {quote(line)}."
            )


def clean_screen(screen: types_pb2.Screen, hostname: str) -> types_pb2.Screen:
    for value, what in ((screen.rows, "rows"), (screen.cols, "columns")):
        if not 1 <= value <= MAX_DIMENSION:
            raise BackendGarbage(f"Backend {hostname!r} sent a screen with {value} {what}.")
    _check_lines(screen.lines, screen.rows, screen.cols, "screen lines", hostname)
    check_count(len(screen.styled_lines), screen.rows, what="styled lines", backend=hostname)
    for line in screen.styled_lines:
        _check_lines(
            [span.text for span in line.spans], screen.cols, screen.cols, "spans", hostname
        )
    return screen


def clean_idle(idle: types_pb2.Idle, hostname: str, name: str = "") -> types_pb2.Idle:
    """An idle a backend sent, checked; ``name``, when given, is the session asked about."""
    _check_asked(idle.session, name, hostname)
    check_name(idle.session, hostname)
    clean_screen(idle.screen, hostname)
    idle.server = hostname
    idle.foreground = clean_foreground(idle.foreground)
    return idle


def clean_scrollback(page: hub_pb2.GetScrollbackResponse, hostname: str) -> None:
    _check_lines(page.lines, SCROLLBACK_PAGE_MAX, MAX_DIMENSION, "scrollback lines", hostname)
    check_count(len(page.styled_lines), SCROLLBACK_PAGE_MAX, what="styled lines", backend=hostname)
    for line in page.styled_lines:
        _check_lines(
            [span.text for span in line.spans], MAX_DIMENSION, MAX_DIMENSION, "spans", hostname
        )


# Attach output through a relay: a backend's chunks are at most 256 KiB and
# a repaint of the largest styled screen a few MiB; past these bounds it is
# not a wsh server's stream.
MAX_ATTACH_OUTPUT = 1024 * 1024
MAX_ATTACH_REPAINT = 12 * 1024 * 1024


def clean_attach_response(
    response: hub_pb2.AttachResponse, hostname: str, resyncs: int | None
) -> hub_pb2.AttachResponse:
    """One response of a backend's Attach stream, checked. ``resyncs`` is the
    count of its last snapshot, None before the first (which must come first)."""
    kind = response.WhichOneof("response")
    if resyncs is None and kind != "snapshot":
        raise BackendGarbage(f"Backend {hostname!r} began an Attach stream without a snapshot.")
    if kind == "snapshot":
        snapshot = response.snapshot
        if len(snapshot.repaint) > MAX_ATTACH_REPAINT:
            raise BackendGarbage(
                f"Backend {hostname!r} sent a repaint of {len(snapshot.repaint)} bytes."
            )
        if resyncs is not None and not resyncs < snapshot.resyncs <= resyncs + 1:
            raise BackendGarbage(
                f"Backend {hostname!r} counted resyncs {resyncs} then {snapshot.resyncs}."
            )
        if resyncs is None and snapshot.resyncs:
            raise BackendGarbage(f"Backend {hostname!r} began an Attach stream with a resync.")
        clean_screen(snapshot.screen, hostname)
        snapshot.server = hostname
    elif kind == "output":
        if len(response.output) > MAX_ATTACH_OUTPUT:
            raise BackendGarbage(
                f"Backend {hostname!r} sent {len(response.output)} bytes of output at once."
            )
    elif kind != "end":
        raise BackendGarbage(f"Backend {hostname!r} sent an empty Attach response.")
    return response
