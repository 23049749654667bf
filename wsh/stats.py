"""Resource use of this server process, read from /proc."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessStats:
    open_fds: int
    child_processes: int
    rss_bytes: int


def _children(pid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # The command name may contain spaces and parentheses: split after it.
        fields = stat.rsplit(b")", 1)[1].split()
        if int(fields[1]) == pid:
            count += 1
    return count


def process_stats() -> ProcessStats:
    """Blocking (scans /proc): call it through ``asyncio.to_thread``."""
    with open("/proc/self/statm", "rb") as f:
        resident_pages = int(f.read().split()[1])
    return ProcessStats(
        open_fds=len(os.listdir("/proc/self/fd")),
        child_processes=_children(os.getpid()),
        rss_bytes=resident_pages * os.sysconf("SC_PAGE_SIZE"),
    )


def task_count() -> int:
    return len(asyncio.all_tasks())
