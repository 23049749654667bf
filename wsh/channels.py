"""A gRPC channel seen through a reverse proxy's path prefix, for hubs and the SDK."""

from __future__ import annotations

from typing import Any

import grpc


class PrefixedChannel:
    """Puts a reverse-proxy path prefix in front of every method path.

    Generated stubs ask their channel for one callable per RPC at a fixed
    path (``/wsh.v1.HubService/X``); a server behind a proxy at
    ``https://proxy/node-1`` is reached at ``/node-1/wsh.v1.HubService/X``.
    """

    def __init__(self, channel: grpc.Channel | grpc.aio.Channel, prefix: str) -> None:
        self._channel = channel
        self._prefix = prefix

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(self._prefix + method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(self._prefix + method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(self._prefix + method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(self._prefix + method, *args, **kwargs)
