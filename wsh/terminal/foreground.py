"""Whether a terminal's foreground program waits for input, from /proc.

The kernel knows what each process is blocked in: ``/proc/PID/syscall``
gives the number and arguments of the system call a sleeping task sits in,
``/proc/PID/fd/N`` what a descriptor is. A program waits for its user when
every process of the terminal's foreground process group is either blocked
reading the terminal or waiting for a member of the group:

- ``read`` (and ``readv``/``pread64``) on a descriptor that is the session's
  terminal (``/dev/pts/N`` or ``/dev/tty``): ``cat``, ``input()``, ``less``.
- ``select``/``pselect6`` whose descriptor range covers a terminal
  descriptor, and ``poll``/``ppoll`` by a process that has the terminal
  open: a shell at its prompt, vi. The descriptor sets of poll and select
  live in the process's memory, which cannot be read cheaply, so a program
  that polls only a socket while holding the terminal open counts as
  waiting for the terminal: the heuristic's known limit.
- ``epoll_wait``/``epoll_pwait``/``epoll_pwait2`` on an epoll whose interest
  list (``/proc/PID/fdinfo/EPFD``, ``tfd:`` lines) holds a terminal
  descriptor: node, most event loops.
- Neutral, never enough alone: ``wait4``/``waitid`` (a shell running a
  command), a read on a pipe (the rest of a pipeline), a zombie.

Anything else is busy: running or in disk sleep, a ``nanosleep``, an
``accept``, a read from a socket (``nc -l``), a stopped job. A process with
threads waits when one of them waits on the terminal and none runs; its
other threads may sleep in anything (locks, timers, their own event loops),
so a threaded program whose main thread sleeps in ``accept`` while another
polls the terminal counts as waiting: a second known limit.

Where the kernel cannot tell (no /proc, ``syscall`` unreadable or unknown
for this machine's architecture, a foreground group in another PID
namespace, more processes than the bound), the answer is UNKNOWN and the
caller falls back to quiet time.

Cost, measured on a 2-vCPU VM: a shell at its prompt under ``sh -c`` (two
processes) 85 µs, with a ``sleep`` running under it (three) 135 µs; the
re-check of a process still blocked in the same call (:func:`still_busy`)
10-20 µs.
"""

from __future__ import annotations

import enum
import os
import platform
from dataclasses import dataclass

# Processes of one foreground group looked at before giving up (UNKNOWN):
# bounds the cost of one inspection whatever runs in the session.
MAX_PROCESSES = 64
# Descriptors a select covers that are looked at one by one; past this,
# the process's descriptors are listed instead.
_FEW_FDS = 8
# Longest command name passed on; the kernel's own limit is 15 bytes.
MAX_NAME = 64


class Readiness(enum.Enum):
    READY = "ready"  # every process of the foreground waits for the terminal
    BUSY = "busy"  # some process does something else, or nothing reads the terminal
    UNKNOWN = "unknown"  # the kernel cannot tell


@dataclass(frozen=True, slots=True)
class Foreground:
    """What the foreground process group of a terminal is doing."""

    readiness: Readiness
    # Command name of the foreground process ("bash", "vim", "python3"); empty if unknown.
    name: str = ""
    # When BUSY: the group and one busy process in it, with what its
    # /proc/PID/syscall said, so that a re-check can start with it alone.
    pgrp: int = 0
    blocker: int = 0
    blocker_call: str = ""

    @property
    def ready(self) -> bool:
        return self.readiness is Readiness.READY


UNKNOWN = Foreground(Readiness.UNKNOWN)


@dataclass(frozen=True, slots=True)
class _Syscalls:
    read: frozenset[int]
    select: frozenset[int]  # arg0 is nfds
    poll: frozenset[int]
    epoll: frozenset[int]  # arg0 is the epoll descriptor
    wait: frozenset[int]


# From the kernel's syscall tables (arch/x86/entry/syscalls/syscall_64.tbl,
# include/uapi/asm-generic/unistd.h for arm64).
_SYSCALLS = {
    "x86_64": _Syscalls(
        read=frozenset({0, 17, 19}),  # read, pread64, readv
        select=frozenset({23, 270}),  # select, pselect6
        poll=frozenset({7, 271}),  # poll, ppoll
        epoll=frozenset({232, 281, 441}),  # epoll_wait, epoll_pwait, epoll_pwait2
        wait=frozenset({61, 247}),  # wait4, waitid
    ),
    "aarch64": _Syscalls(
        read=frozenset({63, 67, 65}),  # read, pread64, readv
        select=frozenset({72}),  # pselect6
        poll=frozenset({73}),  # ppoll
        epoll=frozenset({22, 441}),  # epoll_pwait, epoll_pwait2
        wait=frozenset({260, 95}),  # wait4, waitid
    ),
}


_MACHINE = platform.machine()


class _Unknown(Exception):
    """The kernel cannot tell: the inspection gives up."""


class _Kind(enum.IntEnum):
    # Ordered: a group's verdict is the greatest of its members'.
    NEUTRAL = 0
    TERMINAL = 1
    BUSY = 2


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as exc:
        raise _Unknown(path) from exc


def _stat(pid: int) -> tuple[str, str, int, int]:
    """(command name, state, process group, thread count) of ``pid``."""
    text = _read(f"/proc/{pid}/stat")
    # The name is in parentheses and may hold anything, ')' included.
    open_at, close_at = text.find("("), text.rfind(")")
    fields = text[close_at + 2 :].split()
    if open_at < 0 or len(fields) < 18:
        raise _Unknown(pid)
    return text[open_at + 1 : close_at], fields[0], int(fields[2]), int(fields[17])


class _Inspector:
    """One inspection of one terminal's foreground group."""

    def __init__(self, tty: str, syscalls: _Syscalls) -> None:
        self._ttys = (tty, "/dev/tty")
        self._sys = syscalls

    def _is_tty(self, pid: int, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/fd/{fd}") in self._ttys
        except OSError:
            return False

    def _tty_fds(self, pid: int) -> list[int]:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError as exc:
            raise _Unknown(pid) from exc
        return [int(fd) for fd in fds if self._is_tty(pid, int(fd))]

    def _epoll_watches_tty(self, pid: int, epfd: int) -> bool:
        tty_fds = set(self._tty_fds(pid))
        for line in _read(f"/proc/{pid}/fdinfo/{epfd}").splitlines():
            if line.startswith("tfd:"):
                parts = line.split()
                if len(parts) > 1 and parts[1].isdigit() and int(parts[1]) in tty_fds:
                    return True
        return False

    def _task(self, pid: int, tid: int, other: _Kind, state: str = "") -> tuple[_Kind, str]:
        """What one thread of ``pid`` is doing (``state``: its state letter,
        if already read); ``other`` for a wait that is neither on the
        terminal nor for a child. With it, the ``syscall`` line that verdict
        rests on ("" if none)."""
        base = f"/proc/{pid}/task/{tid}"
        state = state or _stat_state(_read(f"{base}/stat"))
        if state == "Z":
            return _Kind.NEUTRAL, ""
        if state not in ("S", "I"):
            return _Kind.BUSY, ""  # running, disk sleep, stopped, traced
        line = _read(f"{base}/syscall").strip()
        words = line.split()
        if not words or not words[0].lstrip("-").isdigit():
            # "running": it woke between the two reads.
            return _Kind.BUSY, ""
        number = int(words[0])
        if number < 0:
            return _Kind.BUSY, ""  # blocked in the kernel outside any system call
        args = [int(w, 16) for w in words[1:3]] if len(words) >= 3 else []
        sys = self._sys
        kind = other
        if number in sys.wait:
            kind = _Kind.NEUTRAL
        elif number in sys.read and args:
            if self._is_tty(pid, args[0]):
                kind = _Kind.TERMINAL
            else:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{args[0]}")
                except OSError:
                    target = ""
                kind = _Kind.NEUTRAL if target.startswith("pipe:") else other
        elif number in sys.select and args:
            nfds = args[0]
            # A shell at its prompt selects on fd 0 alone (nfds 1): look at
            # the descriptors in range rather than list them all.
            covered = (
                any(self._is_tty(pid, fd) for fd in range(nfds))
                if nfds <= _FEW_FDS
                else any(fd < nfds for fd in self._tty_fds(pid))
            )
            kind = _Kind.TERMINAL if covered else other
        elif number in sys.poll:
            kind = _Kind.TERMINAL if self._tty_fds(pid) else other
        elif number in sys.epoll and args:
            kind = _Kind.TERMINAL if self._epoll_watches_tty(pid, args[0]) else other
        return kind, line if kind is _Kind.BUSY else ""

    def process(self, pid: int, state: str, threads: int) -> tuple[_Kind, str]:
        """What process ``pid`` (in ``state``) is doing, and the ``syscall``
        line a BUSY verdict rests on, if one does."""
        if threads <= 1:
            return self._task(pid, pid, _Kind.BUSY, state)
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError as exc:
            raise _Unknown(pid) from exc
        if len(tids) > MAX_PROCESSES:
            raise _Unknown(pid)
        # Helper threads sleep in locks, timers and their own event loops
        # (node: one in epoll on its own descriptors, four on futexes; vim:
        # one in rt_sigtimedwait): a sleeping thread is not busy, a running
        # one is, and some thread must wait on the terminal.
        kinds = [self._task(pid, tid, _Kind.NEUTRAL)[0] for tid in tids]
        if _Kind.BUSY in kinds or _Kind.TERMINAL not in kinds:
            return _Kind.BUSY, ""
        return _Kind.TERMINAL, ""


def _stat_state(text: str) -> str:
    fields = text[text.rfind(")") + 2 :].split()
    if not fields:
        raise _Unknown(text)
    return fields[0]


def still_busy(before: Foreground, pgrp: int) -> bool:
    """Whether the process found blocked outside the terminal by the
    inspection that gave ``before`` is still blocked in the very same call
    (same group in front, same ``syscall`` line: number, arguments, stack
    and program counter): then the group is still busy, for one read
    instead of a whole inspection (10-20 µs instead of 85-300 µs here). A
    process found running has no such line and is inspected whole again:
    what it did next cannot be told from one read."""
    if not before.blocker or before.pgrp != pgrp:
        return False
    try:
        with open(f"/proc/{before.blocker}/syscall", encoding="ascii") as f:
            now = f.read().strip()
    except OSError:
        return False
    return now == before.blocker_call


def _children(pid: int) -> list[int]:
    # The main thread's list covers children forked by any thread for the
    # programs a terminal runs; threads' own lists are read only for them.
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def inspect(leader: int, pgrp: int, tty: str) -> Foreground:
    """Whether the foreground group ``pgrp`` of terminal ``tty`` waits for input.

    Members are found among ``leader``'s descendants (the session's
    processes); a group id of 0 or below means the group is not visible from
    here (another PID namespace) and the answer is UNKNOWN, as it is when a
    live member's /proc entries cannot be read (another user's: a setuid
    program). A process that exits while it is looked at is left out.
    """
    syscalls = _SYSCALLS.get(_MACHINE)
    if syscalls is None or pgrp <= 0:
        return UNKNOWN
    inspector = _Inspector(tty, syscalls)
    try:
        verdict = _Kind.NEUTRAL
        reader = busy = leader_name = call = ""
        blocker = seen = members = 0
        todo = [leader]
        while todo:
            pid = todo.pop()
            seen += 1
            if seen > MAX_PROCESSES:
                raise _Unknown(pid)
            try:
                name, state, group, threads = _stat(pid)
                todo.extend(_children(pid))
                if group != pgrp:
                    continue
                kind, line = inspector.process(pid, state, threads)
            except _Unknown:
                if not os.path.exists(f"/proc/{pid}"):
                    continue  # exited while we looked: not a member any more
                raise
            members += 1
            verdict = max(verdict, kind)
            if pid == pgrp:
                leader_name = name
            if kind is _Kind.TERMINAL and not reader:
                reader = name
            elif kind is _Kind.BUSY:
                busy = busy or name
                if line and not blocker:
                    blocker, call = pid, line
        if not members:
            # Seen while a shell hands the terminal to a job whose first
            # process has not joined the group yet, or as the group's last
            # member exits: busy, for a moment. (A group only outside the
            # session's tree, a daemon's orphan, stays busy: a known limit.)
            return Foreground(Readiness.BUSY, pgrp=pgrp)
        if verdict is _Kind.TERMINAL:
            return Foreground(Readiness.READY, _clean(reader))
        return Foreground(
            Readiness.BUSY,
            _clean(busy or leader_name),
            pgrp=pgrp,
            blocker=blocker,
            blocker_call=call,
        )
    except (_Unknown, ValueError):
        return UNKNOWN


def _clean(name: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in name[:MAX_NAME])
