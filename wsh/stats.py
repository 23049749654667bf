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


def _children() -> int:
    # Each thread's children file lists the processes it started; reading
    # these is cheap, unlike scanning every process on the machine.
    pids: set[str] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(f.read().split())
        except OSError:
            continue  # the thread ended meanwhile
    return len(pids)


def process_stats() -> ProcessStats:
    """Blocking (scans /proc): call it through ``asyncio.to_thread``."""
    with open("/proc/self/statm", "rb") as f:
        resident_pages = int(f.read().split()[1])
    return ProcessStats(
        open_fds=len(os.listdir("/proc/self/fd")),
        child_processes=_children(),
        rss_bytes=resident_pages * os.sysconf("SC_PAGE_SIZE"),
    )


def task_count() -> int:
    return len(asyncio.all_tasks())
