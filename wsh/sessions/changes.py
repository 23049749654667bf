"""Session changes as watchers see them: what kind of change an inventory update was.

Both this server's sessions and a hub's view of a backend's sessions arrive
as upserts and removals (the session as it is now, or its name gone). A
watcher wants to know what happened: created, renamed, retagged, resized,
exited, killed... This module tells, by comparing the session before and
after, so that local and remote sessions are described the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wsh.sessions.info import SessionInfo, SessionState


class ChangeKind(enum.Enum):
    CREATED = "created"
    RENAMED = "renamed"
    TAGS_CHANGED = "tags_changed"
    RESIZED = "resized"
    EXITED = "exited"
    KILLED = "killed"
    EXPIRED = "expired"
    # Gone for a reason the hub cannot tell (see the proto's SESSION_REMOVED).
    REMOVED = "removed"
    BUSY = "busy"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class SessionChange:
    """One change of one session on ``server``.

    ``info`` is the session as it is now (as last known once it is gone),
    or None for BUSY and IDLE, which carry ``generation`` (and ``quiet_ms``)
    and the session's ``tags`` for filtering instead.
    """

    kind: ChangeKind
    server: str
    name: str
    info: SessionInfo | None
    previous_name: str = ""
    previous_tags: tuple[str, ...] = ()
    generation: int = 0
    quiet_ms: int = 0
    tags: tuple[str, ...] = ()

    def in_scope(self, wanted: frozenset[str]) -> bool:
        """Whether a watcher wanting any of ``wanted`` (all when empty) is told.

        A retag is told to those whose scope the session leaves or enters.
        """
        if not wanted:
            return True
        tags = self.info.tags if self.info is not None else self.tags
        return not wanted.isdisjoint(tags) or not wanted.isdisjoint(self.previous_tags)


def upserted(
    old: SessionInfo | None, new: SessionInfo, previous_name: str = ""
) -> list[SessionChange]:
    """What an upsert of ``new`` over ``old`` (None: unknown until now) was.

    One update may rename, retag and more at once: each is its own change,
    in a fixed order. An upsert that changes none of these (only its
    activity) is no change for watchers.
    """
    server, name = new.server, new.name
    if old is None:
        return [SessionChange(ChangeKind.CREATED, server, name, new)]
    changes = []
    if previous_name and previous_name != name:
        changes.append(SessionChange(ChangeKind.RENAMED, server, name, new, previous_name))
    if old.tags != new.tags:
        changes.append(
            SessionChange(ChangeKind.TAGS_CHANGED, server, name, new, previous_tags=old.tags)
        )
    if (old.rows, old.cols) != (new.rows, new.cols):
        changes.append(SessionChange(ChangeKind.RESIZED, server, name, new))
    if old.state is not SessionState.EXITED and new.state is SessionState.EXITED:
        changes.append(SessionChange(ChangeKind.EXITED, server, name, new))
    return changes


def removed(old: SessionInfo, kind: ChangeKind) -> SessionChange:
    """``old`` is gone: KILLED, EXPIRED or REMOVED."""
    return SessionChange(kind, old.server, old.name, old)


def activity(info: SessionInfo, quiet: bool, quiet_ms: int = 0) -> SessionChange:
    """``info`` settled (IDLE, ``quiet_ms`` since its last activity) or became
    active again (BUSY), at its generation."""
    return SessionChange(
        ChangeKind.IDLE if quiet else ChangeKind.BUSY,
        info.server,
        info.name,
        None,
        generation=info.generation,
        quiet_ms=quiet_ms if quiet else 0,
        tags=info.tags,
    )


def resynced(
    before: dict[str, SessionInfo],
    after: dict[str, SessionInfo],
    was_quiet: set[str] | frozenset[str] = frozenset(),
    quiet_ms: dict[str, int] | None = None,
) -> list[SessionChange]:
    """The changes from one full inventory to the next (a backend that came back).

    ``was_quiet`` are the sessions settled before, ``quiet_ms`` those settled
    now with their quiet time: a session that settled or became active
    meanwhile says so, and a new one that has settled says so after its
    creation. A rename while the hub could not see cannot be told from a
    removal and a creation, and is reported as both; so is a session
    replaced by another of the same name (a backend restarted and the name
    used again).
    """
    quiet_now = quiet_ms or {}
    changes = []
    kept: dict[str, SessionInfo] = {}
    for name, info in before.items():
        now = after.get(name)
        if now is not None and (now.pid, now.created_at) == (info.pid, info.created_at):
            kept[name] = info
        else:
            changes.append(removed(info, ChangeKind.REMOVED))
    for name, info in after.items():
        changes.extend(upserted(kept.get(name), info))
        quiet = name in quiet_now
        was = name in was_quiet if name in kept else False
        if quiet != was or (quiet and kept[name].generation != info.generation):
            changes.append(activity(info, quiet, quiet_now.get(name, 0)))
    return changes
