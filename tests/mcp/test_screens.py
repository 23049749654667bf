"""Screens as text with the cursor marked, and sessions and settles as plain data."""

from __future__ import annotations

from wsh.mcp.screens import CURSOR, idle_data, idle_text, mark_cursor, screen_text, session_line
from wsh.v1 import types_pb2


def screen(lines: list[str], row: int, col: int, visible: bool = True) -> types_pb2.Screen:
    return types_pb2.Screen(
        rows=5,
        cols=20,
        lines=lines,
        cursor=types_pb2.Cursor(row=row, col=col, visible=visible),
        generation=7,
    )


def test_the_cursor_is_inserted_at_its_cell() -> None:
    assert mark_cursor("$ ls", 2) == f"$ {CURSOR}ls"
    assert mark_cursor("$ ", 2) == f"$ {CURSOR}"


def test_a_cursor_past_the_trimmed_line_is_padded_to_its_column() -> None:
    assert mark_cursor("$", 4) == f"$   {CURSOR}"


def test_wide_characters_take_two_cells() -> None:
    # 日 and 本 are two cells each: cell 4 is after both.
    assert mark_cursor("日本x", 4) == f"日本{CURSOR}x"


def test_screen_text_marks_the_cursor_and_drops_trailing_blank_rows() -> None:
    shown = screen_text(screen(["$ echo hi", "hi", "$", "", ""], row=2, col=2))
    assert shown == f"$ echo hi\nhi\n$ {CURSOR}"


def test_a_cursor_on_a_row_below_the_text_is_still_shown() -> None:
    assert screen_text(screen(["top"], row=3, col=0)) == f"top\n\n\n{CURSOR}"


def test_a_hidden_cursor_is_not_marked() -> None:
    assert CURSOR not in screen_text(screen(["vim"], row=0, col=1, visible=False))


def test_idle_text_has_a_header_with_session_server_generation_and_state() -> None:
    idle = types_pb2.Idle(
        session="build", server="build-1", generation=9, screen=screen(["ok"], 0, 2), exit_code=3
    )
    text = idle_text(idle)
    assert text.splitlines()[0] == "[build on build-1 | generation 9 | exited with code 3]"
    data = idle_data(idle)
    assert (data["server"], data["generation"], data["exit_code"]) == ("build-1", 9, 3)
    assert data["screen"]["cursor_col"] == 2


def test_a_running_session_has_no_exit_code_in_its_data() -> None:
    idle = types_pb2.Idle(session="s", server="h", ready=True, foreground="bash")
    assert idle_data(idle)["exit_code"] is None
    assert "ready: bash waits for input" in idle_text(idle)


def test_session_lines_show_server_state_and_tags() -> None:
    session = types_pb2.Session(
        name="a", server="build-2", tags=["job", "x"], foreground="make", last_activity_ms=40
    )
    assert session_line(session) == "a on build-2: busy: make, idle 40 ms, generation 0 tags=job,x"
