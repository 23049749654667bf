"""READY waits on real PTYs: which foreground programs wait for input.

Every READY wait here has a fallback quiet time far longer than the test's
bound, so a wait that returns was decided by the inspection, never by quiet.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator

import pytest

from tests.sessions.test_manager import WAIT_S
from wsh.sessions import session as session_module
from wsh.sessions.manager import SessionManager
from wsh.sessions.session import Session
from wsh.terminal import foreground as fg_module
from wsh.terminal.foreground import Foreground, Readiness

# The fallback quiet time: never reached by a test.
NO_FALLBACK_MS = 120_000
BASH = "exec env PS1='$ ' bash --norc --noprofile -i"
# How long a busy program is watched to show that it is not reported READY.
NOT_READY_S = 1.0


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    sessions = SessionManager("unit")
    try:
        yield sessions
    finally:
        await asyncio.wait_for(sessions.close_all(), WAIT_S)


async def ready(session: Session, last: int | None = None) -> tuple[int, Foreground]:
    generation, state = await asyncio.wait_for(
        session.wait_ready(NO_FALLBACK_MS, last, False), WAIT_S
    )
    assert state is not None and state.ready, state
    return generation, state


async def not_ready(session: Session, last: int | None = None) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(session.wait_ready(NO_FALLBACK_MS, last, False), NOT_READY_S)


def screen(session: Session) -> list[str]:
    return [line.rstrip() for line in session.view(False).lines]


async def prompt(manager: SessionManager) -> tuple[Session, int]:
    session = manager.create(command=BASH)
    generation, state = await ready(session)
    assert state.name == "bash"
    assert screen(session)[0] == "$"
    return session, generation


async def typed(session: Session, line: str) -> tuple[int, Foreground]:
    """Type ``line`` at the shell and wait for READY after it."""
    return await ready(session, session.send(line.encode() + b"\n"))


async def test_bash_prompt_after_each_command(manager: SessionManager) -> None:
    session, _ = await prompt(manager)
    # The reply is never early: the output and the next prompt are drawn,
    # however soon the wait starts after the input.
    for n in range(20):
        _, state = await typed(session, f"echo tok{n}")
        lines = [line for line in screen(session) if line]
        assert lines[-2:] == [f"tok{n}", "$"], lines
        assert state.name == "bash"


async def test_sleep_is_not_ready_until_it_ends(manager: SessionManager) -> None:
    session = manager.create(command="sleep 2; echo slept; exec cat")
    await not_ready(session)
    _, state = await ready(session)
    assert state.name == "cat"
    assert "slept" in screen(session)


async def test_sleep_at_a_prompt_then_output(manager: SessionManager) -> None:
    session, _ = await prompt(manager)
    started = time.monotonic()
    await typed(session, "sleep 1.5; echo woke")
    # Decided by the inspection: READY only once sleep is over and the
    # shell drew its prompt after the output.
    assert time.monotonic() - started >= 1.5
    lines = [line for line in screen(session) if line]
    assert lines[-2:] == ["woke", "$"], lines


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("cat", "cat"),
        ("python3 -c 'input()'", "python3"),
        ("cat | cat", "cat"),
    ],
)
async def test_programs_reading_the_terminal(
    manager: SessionManager, command: str, name: str
) -> None:
    _, state = await ready(manager.create(command=command))
    assert state.name == name


async def test_vi(manager: SessionManager, tmp_path: object) -> None:
    if shutil.which("vi") is None:
        pytest.skip("no vi here")
    session = manager.create(command="exec vi -u NONE -i NONE")
    _, state = await ready(session)
    assert state.name in ("vi", "vim")
    assert session.view(False).alternate_screen


async def test_less(manager: SessionManager) -> None:
    if shutil.which("less") is None:
        pytest.skip("no less here")
    session = manager.create(command="seq 1 100 | less")
    _, state = await ready(session)
    assert state.name == "less"
    assert screen(session)[0] == "1"


async def test_busy_loop_is_never_ready(manager: SessionManager) -> None:
    session = manager.create(command="exec python3 -c 'while True: pass'")
    await not_ready(session)
    state = session.inspect()
    assert (state.readiness, state.name) == (Readiness.BUSY, "python3")
    # Running: no system call to look at again, so no shortcut next time.
    assert state.blocker == 0


async def test_network_wait_is_never_ready(manager: SessionManager) -> None:
    # `nc -l` where there is one; else the same wait (accept) from Python.
    listen = (
        "exec nc -l 127.0.0.1 0"
        if shutil.which("nc")
        else "exec python3 -c 'import socket; s = socket.socket(); "
        's.bind(("127.0.0.1", 0)); s.listen(); s.accept()\''
    )
    session = manager.create(command=listen)
    await not_ready(session)
    state = session.inspect()
    assert state.readiness is Readiness.BUSY and state.name in ("nc", "python3")


async def test_pipeline_is_ready_only_once_it_ends(manager: SessionManager) -> None:
    session, _ = await prompt(manager)
    started = time.monotonic()
    await typed(session, "sleep 1 | cat; echo piped")
    assert time.monotonic() - started >= 1.0
    assert [line for line in screen(session) if line][-2:] == ["piped", "$"]


async def test_background_job_with_the_shell_at_its_prompt(manager: SessionManager) -> None:
    session, _ = await prompt(manager)
    _, state = await typed(session, "sleep 30 &")
    assert state.name == "bash"
    assert screen(session)[-1] == "" or "$" in screen(session)


async def test_subshell(manager: SessionManager) -> None:
    session, _ = await prompt(manager)
    started = time.monotonic()
    _, state = await typed(session, "(sleep 1; echo inner; cat)")
    # The subshell waits for cat, which reads the terminal: READY, after the
    # sleep and the output.
    assert time.monotonic() - started >= 1.0
    assert state.name == "cat"
    assert "inner" in screen(session)


async def test_exec_into_another_program(manager: SessionManager) -> None:
    session, _ = await prompt(manager)
    _, state = await typed(session, "exec python3 -c 'input(\"name? \")'")
    assert state.name == "python3"
    assert "name?" in screen(session)[1]


async def test_exited_session_answers_at_once(manager: SessionManager) -> None:
    session = manager.create(command="echo bye")
    generation, state = await asyncio.wait_for(
        session.wait_ready(NO_FALLBACK_MS, None, False), WAIT_S
    )
    assert state is None and not session.process.running
    assert generation == session.activity.generation


async def test_fallback_to_quiet_where_the_kernel_cannot_tell(
    manager: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An architecture whose system call numbers are not known: nothing can
    # be told, so READY settles on the quiet time and says UNKNOWN.
    monkeypatch.setattr(fg_module, "_MACHINE", "pdp11")
    session = manager.create(command="sleep 30")
    generation, state = await asyncio.wait_for(session.wait_ready(300, None, False), WAIT_S)
    assert state is not None and state.readiness is Readiness.UNKNOWN
    assert session.activity.idle_ms() >= 300
    assert generation == session.activity.generation


async def test_other_pid_namespace_is_unknown() -> None:
    # tcgetpgrp gives 0 for a group this PID namespace cannot see.
    assert fg_module.inspect(1, 0, "/dev/pts/0").readiness is Readiness.UNKNOWN


async def test_no_inspection_without_a_waiter(
    manager: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = fg_module.inspect

    def counted(leader: int, pgrp: int, tty: str) -> Foreground:
        calls.append(leader)
        return real(leader, pgrp, tty)

    monkeypatch.setattr(fg_module, "inspect", counted)
    session = manager.create(command="while :; do echo x; sleep 0.01; done")
    # Creating it told the listing its foreground once; output alone never does.
    calls.clear()
    await asyncio.sleep(0.5)
    assert session.activity.generation > 10
    assert calls == []
    # A wait on a busy foreground re-checks with backoff (10 ms doubling to
    # 200 ms), and an unchanged busy process costs one read, not a whole
    # inspection: over a second of `sleep`, a handful of inspections.
    quiet = manager.create(command="exec sleep 30")
    calls.clear()
    await not_ready(quiet)
    assert 1 <= len(calls) <= 3, calls


async def test_a_group_with_no_member_in_sight_is_busy_not_unknown(
    manager: SessionManager,
) -> None:
    # As a shell hands the terminal to a job whose process has not joined
    # the group yet: busy for a moment, never a reason to fall back to quiet.
    session = manager.create(command="exec sleep 30")
    state = fg_module.inspect(session.process.pid, session.process.pid + 10_000_000, "/dev/null")
    assert state.readiness is Readiness.BUSY


async def test_listings_reinspect_within_a_shared_budget(
    manager: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = await prompt(manager)
    assert session.foreground() == Foreground(Readiness.READY, "bash")
    session.send(b"exec sleep 30\n")
    # Moved on since the last inspection: looked at again after 0.1 s...
    await asyncio.sleep(0.3)
    assert session.foreground() == session.inspect()
    assert session.info("unit").foreground == "sleep"
    # ...unless the budget of the whole process is spent: the last one shows.
    before = session.foreground()
    monkeypatch.setattr(session_module, "_LISTING_BUDGET", session_module._Budget(0, 0))
    monkeypatch.setattr(session_module, "FOREGROUND_FRESH_S", 0.0)
    calls: list[int] = []
    real = fg_module.inspect

    def counted(leader: int, pgrp: int, tty: str) -> Foreground:
        calls.append(leader)
        return real(leader, pgrp, tty)

    monkeypatch.setattr(fg_module, "inspect", counted)
    assert session.foreground() is before
    assert calls == []
