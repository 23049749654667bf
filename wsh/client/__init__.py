"""Python SDK for wsh: a blocking :class:`Client` and an asyncio :class:`AsyncClient`.

Both have one method per ``wsh.v1.HubService`` RPC, named in snake_case, taking
the request fields as keyword arguments and returning the typed protobuf result
(a ``Session``, a ``Screen``, an ``Idle``...). Every failed call raises
:class:`WshRpcError`, which carries the stable ``reason`` the server put in its
``google.rpc.ErrorInfo``.

The agent loop is one call::

    from wsh.client import Client

    with Client() as wsh:
        wsh.create_session("build")
        idle = wsh.run("build", "make\\n")
        print("\\n".join(idle.screen.lines))

Addresses are ``host:port``, ``http://host:port`` (plaintext) or
``https://host:port`` (TLS), optionally followed by a path prefix for servers
behind a reverse proxy. Without one, ``$WSH_ADDR`` then ``127.0.0.1:7600`` are
used; the token defaults to ``$WSH_TOKEN``.

The clients are written once, in :mod:`wsh.client._async`; :mod:`wsh.client._sync`
is generated from it by ``scripts/generate-sync-client``.
"""

from wsh.client._async import AsyncAttachment, AsyncClient, AsyncIdleStream, AsyncWatchStream
from wsh.client._errors import WshRpcError
from wsh.client._params import (
    DEFAULT_IDLE_MS,
    ExclusionArg,
    RaceOptions,
    ScreenFormatArg,
    screen_format,
)
from wsh.client._sync import Attachment, Client, IdleStream, WatchStream

__all__ = [
    "DEFAULT_IDLE_MS",
    "AsyncAttachment",
    "AsyncClient",
    "AsyncIdleStream",
    "AsyncWatchStream",
    "Attachment",
    "Client",
    "ExclusionArg",
    "IdleStream",
    "RaceOptions",
    "ScreenFormatArg",
    "WatchStream",
    "WshRpcError",
    "screen_format",
]
