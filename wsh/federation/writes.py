"""Read-your-writes on a hub: a forwarded change is in the inventory before the call returns.

The hub lists and races remote sessions from each backend's Link inventory.
A change made through the hub (create, rename, retag, resize, kill) reaches
that inventory as a Link event, on another stream than the call's answer, so
it can arrive a little after the answer. The hub therefore holds its answer
until the inventory shows the change. Link events arrive in order, so once
the inventory shows a change, every earlier change of that backend is in it
too and no stale event can undo it later.

A backend that does not send the event in time (a slow or lying one) gets
the answer's session written into the inventory directly, so the caller
still reads its own write.
"""

from __future__ import annotations

import asyncio
import contextlib

from wsh.federation.registry import Backend, Registry
from wsh.sessions.info import SessionInfo

# The event normally follows the answer within a millisecond on loopback;
# this only bounds how long a backend that never sends it can hold a call.
SYNC_TIMEOUT_S = 2.0


def _shows(backend: Backend, name: str, info: SessionInfo | None, previous_name: str) -> bool:
    if previous_name and previous_name != name and previous_name in backend.sessions:
        return False
    if info is None:
        return name not in backend.sessions
    known = backend.sessions.get(name)
    return (
        known is not None
        and known.tags == info.tags
        and (known.rows, known.cols) == (info.rows, info.cols)
    )


async def observe(
    registry: Registry,
    backend: Backend,
    name: str,
    info: SessionInfo | None,
    previous_name: str = "",
) -> None:
    """Return once ``backend``'s inventory shows session ``name`` as ``info``
    (None: gone), renamed from ``previous_name`` if given."""
    changes = registry.changes
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SYNC_TIMEOUT_S):
            seen = changes.version
            while backend.healthy and not _shows(backend, name, info, previous_name):
                seen = await changes.wait(seen)
    if _shows(backend, name, info, previous_name):
        return
    if previous_name and previous_name != name:
        backend.remove(previous_name)
    if info is None:
        backend.remove(name)
    else:
        backend.upsert(info)
    registry.changes.bump()
