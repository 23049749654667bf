import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATE_UNSPECIFIED: _ClassVar[SessionState]
    SESSION_STATE_RUNNING: _ClassVar[SessionState]
    SESSION_STATE_EXITED: _ClassVar[SessionState]

class ScreenFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCREEN_FORMAT_UNSPECIFIED: _ClassVar[ScreenFormat]
    SCREEN_FORMAT_PLAIN: _ClassVar[ScreenFormat]
    SCREEN_FORMAT_STYLED: _ClassVar[ScreenFormat]
SESSION_STATE_UNSPECIFIED: SessionState
SESSION_STATE_RUNNING: SessionState
SESSION_STATE_EXITED: SessionState
SCREEN_FORMAT_UNSPECIFIED: ScreenFormat
SCREEN_FORMAT_PLAIN: ScreenFormat
SCREEN_FORMAT_STYLED: ScreenFormat

class Session(_message.Message):
    __slots__ = ("name", "server", "tags", "command", "pid", "rows", "cols", "state", "exit_code", "generation", "created_at", "last_activity_ms", "cwd")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_MS_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    name: str
    server: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    command: str
    pid: int
    rows: int
    cols: int
    state: SessionState
    exit_code: int
    generation: int
    created_at: _timestamp_pb2.Timestamp
    last_activity_ms: int
    cwd: str
    def __init__(self, name: _Optional[str] = ..., server: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., command: _Optional[str] = ..., pid: _Optional[int] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., state: _Optional[_Union[SessionState, str]] = ..., exit_code: _Optional[int] = ..., generation: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_activity_ms: _Optional[int] = ..., cwd: _Optional[str] = ...) -> None: ...

class Color(_message.Message):
    __slots__ = ("indexed", "rgb")
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    RGB_FIELD_NUMBER: _ClassVar[int]
    indexed: int
    rgb: int
    def __init__(self, indexed: _Optional[int] = ..., rgb: _Optional[int] = ...) -> None: ...

class StyledSpan(_message.Message):
    __slots__ = ("text", "fg", "bg", "bold", "italic", "underline", "inverse", "faint", "strikethrough", "blink")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FG_FIELD_NUMBER: _ClassVar[int]
    BG_FIELD_NUMBER: _ClassVar[int]
    BOLD_FIELD_NUMBER: _ClassVar[int]
    ITALIC_FIELD_NUMBER: _ClassVar[int]
    UNDERLINE_FIELD_NUMBER: _ClassVar[int]
    INVERSE_FIELD_NUMBER: _ClassVar[int]
    FAINT_FIELD_NUMBER: _ClassVar[int]
    STRIKETHROUGH_FIELD_NUMBER: _ClassVar[int]
    BLINK_FIELD_NUMBER: _ClassVar[int]
    text: str
    fg: Color
    bg: Color
    bold: bool
    italic: bool
    underline: bool
    inverse: bool
    faint: bool
    strikethrough: bool
    blink: bool
    def __init__(self, text: _Optional[str] = ..., fg: _Optional[_Union[Color, _Mapping]] = ..., bg: _Optional[_Union[Color, _Mapping]] = ..., bold: _Optional[bool] = ..., italic: _Optional[bool] = ..., underline: _Optional[bool] = ..., inverse: _Optional[bool] = ..., faint: _Optional[bool] = ..., strikethrough: _Optional[bool] = ..., blink: _Optional[bool] = ...) -> None: ...

class StyledLine(_message.Message):
    __slots__ = ("spans",)
    SPANS_FIELD_NUMBER: _ClassVar[int]
    spans: _containers.RepeatedCompositeFieldContainer[StyledSpan]
    def __init__(self, spans: _Optional[_Iterable[_Union[StyledSpan, _Mapping]]] = ...) -> None: ...

class Cursor(_message.Message):
    __slots__ = ("row", "col", "visible")
    ROW_FIELD_NUMBER: _ClassVar[int]
    COL_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_FIELD_NUMBER: _ClassVar[int]
    row: int
    col: int
    visible: bool
    def __init__(self, row: _Optional[int] = ..., col: _Optional[int] = ..., visible: _Optional[bool] = ...) -> None: ...

class Screen(_message.Message):
    __slots__ = ("rows", "cols", "lines", "styled_lines", "cursor", "alternate_screen", "first_line_index", "total_lines", "generation")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    STYLED_LINES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ALTERNATE_SCREEN_FIELD_NUMBER: _ClassVar[int]
    FIRST_LINE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LINES_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    lines: _containers.RepeatedScalarFieldContainer[str]
    styled_lines: _containers.RepeatedCompositeFieldContainer[StyledLine]
    cursor: Cursor
    alternate_screen: bool
    first_line_index: int
    total_lines: int
    generation: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ..., lines: _Optional[_Iterable[str]] = ..., styled_lines: _Optional[_Iterable[_Union[StyledLine, _Mapping]]] = ..., cursor: _Optional[_Union[Cursor, _Mapping]] = ..., alternate_screen: _Optional[bool] = ..., first_line_index: _Optional[int] = ..., total_lines: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class Idle(_message.Message):
    __slots__ = ("session", "server", "generation", "screen", "scrollback_lines", "last_activity_ms")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SCREEN_FIELD_NUMBER: _ClassVar[int]
    SCROLLBACK_LINES_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_MS_FIELD_NUMBER: _ClassVar[int]
    session: str
    server: str
    generation: int
    screen: Screen
    scrollback_lines: int
    last_activity_ms: int
    def __init__(self, session: _Optional[str] = ..., server: _Optional[str] = ..., generation: _Optional[int] = ..., screen: _Optional[_Union[Screen, _Mapping]] = ..., scrollback_lines: _Optional[int] = ..., last_activity_ms: _Optional[int] = ...) -> None: ...
