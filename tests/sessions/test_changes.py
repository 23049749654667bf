"""What kind of change an upsert, a removal or a new inventory was, for watchers."""

from __future__ import annotations

import dataclasses

from wsh.sessions.changes import ChangeKind, resynced, upserted
from wsh.sessions.info import SessionInfo, SessionState


def info(name: str = "s", **kw: object) -> SessionInfo:
    fields: dict[str, object] = {
        "name": name,
        "server": "b",
        "tags": (),
        "command": "sh",
        "pid": 100,
        "rows": 24,
        "cols": 80,
        "state": SessionState.RUNNING,
        "exit_code": None,
        "generation": 1,
        "created_at": 1000.0,
        "last_activity_ms": 0,
        "cwd": "/",
    }
    fields.update(kw)
    return SessionInfo(**fields)  # type: ignore[arg-type]


def kinds(changes: list) -> list[ChangeKind]:  # type: ignore[type-arg]
    return [c.kind for c in changes]


def test_each_part_of_an_update_is_its_own_change_in_order() -> None:
    old = info("a", tags=("x",))
    new = dataclasses.replace(
        old, name="b", tags=("y",), rows=30, state=SessionState.EXITED, exit_code=2
    )
    got = upserted(old, new, previous_name="a")
    assert kinds(got) == [
        ChangeKind.RENAMED,
        ChangeKind.TAGS_CHANGED,
        ChangeKind.RESIZED,
        ChangeKind.EXITED,
    ]
    assert got[0].previous_name == "a"
    assert got[1].previous_tags == ("x",)
    assert kinds(upserted(None, new)) == [ChangeKind.CREATED]
    # Activity alone is no change for watchers.
    assert upserted(old, dataclasses.replace(old, generation=9)) == []


def test_tag_scope_covers_the_session_before_and_after() -> None:
    (change,) = upserted(info(tags=("x",)), info(tags=("y",)))
    assert change.in_scope(frozenset({"x"}))
    assert change.in_scope(frozenset({"y"}))
    assert not change.in_scope(frozenset({"z"}))
    assert change.in_scope(frozenset())


def test_a_new_inventory_gives_only_the_differences() -> None:
    before = {
        "same": info("same"),
        "gone": info("gone"),
        "retagged": info("retagged"),
        "replaced": info("replaced", pid=5),
    }
    after = {
        "same": info("same", generation=50),
        "retagged": info("retagged", tags=("t",)),
        "replaced": info("replaced", pid=6),
        "new": info("new"),
    }
    got = sorted((c.kind.value, c.name) for c in resynced(before, after))
    assert got == [
        ("created", "new"),
        ("created", "replaced"),
        ("removed", "gone"),
        ("removed", "replaced"),
        ("tags_changed", "retagged"),
    ]


def test_a_new_inventory_tells_what_settled_or_woke_meanwhile() -> None:
    before = {"slept": info("slept"), "woke": info("woke"), "still": info("still")}
    after = {
        "slept": info("slept", generation=3),
        "woke": info("woke", generation=4),
        "still": info("still"),
        "new": info("new"),
    }
    got = resynced(
        before, after, was_quiet={"woke", "still"}, quiet_ms={"slept": 70, "still": 9, "new": 5}
    )
    assert sorted((c.kind.value, c.name, c.generation, c.quiet_ms) for c in got) == [
        ("busy", "woke", 4, 0),
        ("created", "new", 0, 0),
        ("idle", "new", 1, 5),
        ("idle", "slept", 3, 70),
    ]
    # Created comes before the new session's settle.
    assert [c.kind for c in got if c.name == "new"] == [ChangeKind.CREATED, ChangeKind.IDLE]
