"""``wsh mcp``: the cluster for agents that speak the Model Context Protocol.

An MCP server (the official ``mcp`` SDK) that is a client of one hub: every
tool and resource is a call through :class:`wsh.client.AsyncClient`. The
modules: :mod:`.server` (the server, its transports), :mod:`.tools`,
:mod:`.resources` (screens as resources, watched for updates),
:mod:`.prompt`, :mod:`.screens` (text and data from protobuf), :mod:`.errors`
(failures as tool errors). Needs the ``mcp`` extra: ``pip install 'wsh[mcp]'``.
"""
