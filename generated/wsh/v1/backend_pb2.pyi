from wsh.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Identity(_message.Message):
    __slots__ = ("hostname", "server_id", "version")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    server_id: str
    version: str
    def __init__(self, hostname: _Optional[str] = ..., server_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("seq", "ack_seq")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACK_SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    ack_seq: int
    def __init__(self, seq: _Optional[int] = ..., ack_seq: _Optional[int] = ...) -> None: ...

class Inventory(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[_types_pb2.Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[_types_pb2.Session, _Mapping]]] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("upsert", "previous_name", "removed")
    UPSERT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_NAME_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    upsert: _types_pb2.Session
    previous_name: str
    removed: str
    def __init__(self, upsert: _Optional[_Union[_types_pb2.Session, _Mapping]] = ..., previous_name: _Optional[str] = ..., removed: _Optional[str] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("identity", "heartbeat")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    identity: Identity
    heartbeat: Heartbeat
    def __init__(self, identity: _Optional[_Union[Identity, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class LinkResponse(_message.Message):
    __slots__ = ("identity", "heartbeat", "inventory", "event")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    identity: Identity
    heartbeat: Heartbeat
    inventory: Inventory
    event: SessionEvent
    def __init__(self, identity: _Optional[_Union[Identity, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., inventory: _Optional[_Union[Inventory, _Mapping]] = ..., event: _Optional[_Union[SessionEvent, _Mapping]] = ...) -> None: ...
