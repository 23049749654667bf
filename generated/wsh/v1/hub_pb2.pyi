import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from wsh.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServerHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVER_HEALTH_UNSPECIFIED: _ClassVar[ServerHealth]
    SERVER_HEALTH_HEALTHY: _ClassVar[ServerHealth]
    SERVER_HEALTH_CONNECTING: _ClassVar[ServerHealth]
    SERVER_HEALTH_UNAVAILABLE: _ClassVar[ServerHealth]
    SERVER_HEALTH_REJECTED: _ClassVar[ServerHealth]

class ServerRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVER_ROLE_UNSPECIFIED: _ClassVar[ServerRole]
    SERVER_ROLE_LOCAL: _ClassVar[ServerRole]
    SERVER_ROLE_MEMBER: _ClassVar[ServerRole]
SERVER_HEALTH_UNSPECIFIED: ServerHealth
SERVER_HEALTH_HEALTHY: ServerHealth
SERVER_HEALTH_CONNECTING: ServerHealth
SERVER_HEALTH_UNAVAILABLE: ServerHealth
SERVER_HEALTH_REJECTED: ServerHealth
SERVER_ROLE_UNSPECIFIED: ServerRole
SERVER_ROLE_LOCAL: ServerRole
SERVER_ROLE_MEMBER: ServerRole

class CreateSessionRequest(_message.Message):
    __slots__ = ("server", "name", "command", "rows", "cols", "cwd", "env", "tags")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    command: str
    rows: int
    cols: int
    cwd: str
    env: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ..., command: _Optional[str] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., cwd: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _types_pb2.Session
    def __init__(self, session: _Optional[_Union[_types_pb2.Session, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("server", "tags")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    server: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, server: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[_types_pb2.Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[_types_pb2.Session, _Mapping]]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("server", "name")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _types_pb2.Session
    def __init__(self, session: _Optional[_Union[_types_pb2.Session, _Mapping]] = ...) -> None: ...

class UpdateSessionRequest(_message.Message):
    __slots__ = ("server", "name", "new_name", "add_tags", "remove_tags")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    ADD_TAGS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_TAGS_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    new_name: str
    add_tags: _containers.RepeatedScalarFieldContainer[str]
    remove_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ..., new_name: _Optional[str] = ..., add_tags: _Optional[_Iterable[str]] = ..., remove_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _types_pb2.Session
    def __init__(self, session: _Optional[_Union[_types_pb2.Session, _Mapping]] = ...) -> None: ...

class KillSessionRequest(_message.Message):
    __slots__ = ("server", "name")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class KillSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SendInputRequest(_message.Message):
    __slots__ = ("server", "name", "data")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    data: bytes
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class SendInputResponse(_message.Message):
    __slots__ = ("generation",)
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    generation: int
    def __init__(self, generation: _Optional[int] = ...) -> None: ...

class GetScreenRequest(_message.Message):
    __slots__ = ("server", "name", "format")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    format: _types_pb2.ScreenFormat
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ..., format: _Optional[_Union[_types_pb2.ScreenFormat, str]] = ...) -> None: ...

class GetScreenResponse(_message.Message):
    __slots__ = ("screen",)
    SCREEN_FIELD_NUMBER: _ClassVar[int]
    screen: _types_pb2.Screen
    def __init__(self, screen: _Optional[_Union[_types_pb2.Screen, _Mapping]] = ...) -> None: ...

class GetScrollbackRequest(_message.Message):
    __slots__ = ("server", "name", "offset", "limit", "format")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    offset: int
    limit: int
    format: _types_pb2.ScreenFormat
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., format: _Optional[_Union[_types_pb2.ScreenFormat, str]] = ...) -> None: ...

class GetScrollbackResponse(_message.Message):
    __slots__ = ("lines", "styled_lines", "total_lines", "offset")
    LINES_FIELD_NUMBER: _ClassVar[int]
    STYLED_LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LINES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    styled_lines: _containers.RepeatedCompositeFieldContainer[_types_pb2.StyledLine]
    total_lines: int
    offset: int
    def __init__(self, lines: _Optional[_Iterable[str]] = ..., styled_lines: _Optional[_Iterable[_Union[_types_pb2.StyledLine, _Mapping]]] = ..., total_lines: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ResizeSessionRequest(_message.Message):
    __slots__ = ("server", "name", "rows", "cols")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    rows: int
    cols: int
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class ResizeSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _types_pb2.Session
    def __init__(self, session: _Optional[_Union[_types_pb2.Session, _Mapping]] = ...) -> None: ...

class AwaitIdleRequest(_message.Message):
    __slots__ = ("server", "name", "timeout_ms", "max_wait_ms", "last_generation", "fresh", "format")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_GENERATION_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    server: str
    name: str
    timeout_ms: int
    max_wait_ms: int
    last_generation: int
    fresh: bool
    format: _types_pb2.ScreenFormat
    def __init__(self, server: _Optional[str] = ..., name: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., last_generation: _Optional[int] = ..., fresh: _Optional[bool] = ..., format: _Optional[_Union[_types_pb2.ScreenFormat, str]] = ...) -> None: ...

class AwaitIdleResponse(_message.Message):
    __slots__ = ("idle",)
    IDLE_FIELD_NUMBER: _ClassVar[int]
    idle: _types_pb2.Idle
    def __init__(self, idle: _Optional[_Union[_types_pb2.Idle, _Mapping]] = ...) -> None: ...

class RaceIdleRequest(_message.Message):
    __slots__ = ("tags", "server", "timeout_ms", "max_wait_ms", "last_session", "last_server", "last_generation", "format", "fresh")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SESSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SERVER_FIELD_NUMBER: _ClassVar[int]
    LAST_GENERATION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    server: str
    timeout_ms: int
    max_wait_ms: int
    last_session: str
    last_server: str
    last_generation: int
    format: _types_pb2.ScreenFormat
    fresh: bool
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., server: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., last_session: _Optional[str] = ..., last_server: _Optional[str] = ..., last_generation: _Optional[int] = ..., format: _Optional[_Union[_types_pb2.ScreenFormat, str]] = ..., fresh: _Optional[bool] = ...) -> None: ...

class RaceIdleResponse(_message.Message):
    __slots__ = ("idle",)
    IDLE_FIELD_NUMBER: _ClassVar[int]
    idle: _types_pb2.Idle
    def __init__(self, idle: _Optional[_Union[_types_pb2.Idle, _Mapping]] = ...) -> None: ...

class Server(_message.Message):
    __slots__ = ("hostname", "address", "health", "role", "session_count", "latency_ms", "last_error", "server_id")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    address: str
    health: ServerHealth
    role: ServerRole
    session_count: int
    latency_ms: float
    last_error: str
    server_id: str
    def __init__(self, hostname: _Optional[str] = ..., address: _Optional[str] = ..., health: _Optional[_Union[ServerHealth, str]] = ..., role: _Optional[_Union[ServerRole, str]] = ..., session_count: _Optional[int] = ..., latency_ms: _Optional[float] = ..., last_error: _Optional[str] = ..., server_id: _Optional[str] = ...) -> None: ...

class ListServersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServersResponse(_message.Message):
    __slots__ = ("servers",)
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[Server]
    def __init__(self, servers: _Optional[_Iterable[_Union[Server, _Mapping]]] = ...) -> None: ...

class GetServerRequest(_message.Message):
    __slots__ = ("hostname",)
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    def __init__(self, hostname: _Optional[str] = ...) -> None: ...

class GetServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class AddServerRequest(_message.Message):
    __slots__ = ("address", "token", "wait", "wait_timeout_ms")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    address: str
    token: str
    wait: bool
    wait_timeout_ms: int
    def __init__(self, address: _Optional[str] = ..., token: _Optional[str] = ..., wait: _Optional[bool] = ..., wait_timeout_ms: _Optional[int] = ...) -> None: ...

class AddServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class RemoveServerRequest(_message.Message):
    __slots__ = ("hostname", "address")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    address: str
    def __init__(self, hostname: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class RemoveServerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadConfigResponse(_message.Message):
    __slots__ = ("added", "removed", "updated", "warnings")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    updated: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., updated: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("hostname", "server_id", "version", "uptime", "started_at")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    server_id: str
    version: str
    uptime: _duration_pb2.Duration
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, hostname: _Optional[str] = ..., server_id: _Optional[str] = ..., version: _Optional[str] = ..., uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
