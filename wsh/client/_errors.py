"""The error every failed SDK call raises, built from a call's ``google.rpc.Status``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2


class WshRpcError(Exception):
    """A failed wsh call: the gRPC status plus the server's ``ErrorInfo``.

    ``reason`` is the stable UPPER_SNAKE word from the ``google.rpc.ErrorInfo``
    detail (``SESSION_NOT_FOUND``...), or ``""`` when the status carried none
    (connection failures, client-side deadlines). ``metadata`` is the
    ErrorInfo's metadata map.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, reason, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.reason or self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"WshRpcError({self.code.name}, {self.reason!r}, {self.message!r})"


def error_from_status(code: grpc.StatusCode, message: str, status: Any) -> WshRpcError:
    """Build the error from a call's code and message and its ``google.rpc.Status``, if any."""
    reason = ""
    metadata: dict[str, str] = {}
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
            break
    return WshRpcError(code, reason, message, metadata)


def empty_race() -> WshRpcError:
    return WshRpcError(grpc.StatusCode.UNKNOWN, "", "RaceIdle ended without a result")
