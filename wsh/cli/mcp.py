"""``wsh mcp``: an MCP server over a hub, on stdio (default) or streamable HTTP (``--listen``).

Exit statuses: 0 when the client closed stdio or the HTTP server was
stopped (SIGINT, SIGTERM), 1 when it cannot start (``REASON: message`` on
stderr), 2 for a bad option or a missing ``mcp`` package (usage).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from wsh.cli.server import LOG_FORMAT
from wsh.defaults import DEFAULT_ADDR

EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsh mcp",
        description="Serve the cluster to AI agents over the Model Context Protocol: tools "
        "for sessions (run, race_idle, get_screen...), each session's screen as a resource, "
        "a prompt with the workflow. Talks gRPC to one hub. Without --listen it serves one "
        "client on stdin/stdout, for agent runtimes that spawn it.",
    )
    parser.add_argument(
        "--addr",
        default=None,
        help=f"the hub: host:port, http://... or https://... (default: $WSH_ADDR, else "
        f"{DEFAULT_ADDR})",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="the hub's bearer token, also required from HTTP clients with --listen "
        "(default: $WSH_TOKEN, which unlike an argument is not visible in the process list)",
    )
    parser.add_argument("--ca-file", default=None, help="PEM CA bundle for the hub; implies TLS")
    parser.add_argument("--client-cert", default=None, help="PEM client certificate (mTLS)")
    parser.add_argument("--client-key", default=None, help="PEM client key (mTLS)")
    parser.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (port 0: any "
        "free one, printed on stderr); off loopback a token is required",
    )
    parser.add_argument(
        "--allow-admin",
        action="store_true",
        help="also offer add_server and remove_server (registering backends with the hub)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log records of this level and above go to stderr (default: WARNING)",
    )
    return parser


def _listen_address(parser: argparse.ArgumentParser, listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        parser.error(f"--listen: expected HOST:PORT, got {listen!r}")
    return host, int(port)


async def _serve(args: argparse.Namespace, token: str | None, sock: socket.socket | None) -> None:
    from wsh.client import AsyncClient
    from wsh.mcp.server import WshMCP, serve_http, serve_stdio

    client = AsyncClient(
        args.addr,
        token=token or "",
        ca_file=args.ca_file,
        client_cert=args.client_cert,
        client_key=args.client_key,
    )
    try:
        server = WshMCP(client, allow_admin=args.allow_admin)
        if sock is None:
            await serve_stdio(server)
        else:
            await serve_http(server, sock, token)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wsh mcp``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        import mcp  # noqa: F401
    except ImportError:
        print("wsh mcp: the mcp package is missing: pip install 'wsh[mcp]'", file=sys.stderr)
        return EXIT_USAGE
    # The token is never printed: stdout is the MCP stream, stderr the log.
    token = os.environ.get("WSH_TOKEN") if args.token is None else args.token
    sock = None
    if args.listen is not None:
        from wsh.mcp.server import bind
        from wsh.server import is_loopback_listen

        try:
            host, port = _listen_address(parser, args.listen)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if not token and not is_loopback_listen(args.listen):
            print(
                f"wsh mcp: TOKEN_REQUIRED: listening on {args.listen} (not loopback) needs a "
                "token: set WSH_TOKEN (the hub's) or pass --token",
                file=sys.stderr,
            )
            return EXIT_FAILED
        try:
            sock = bind(host, port)
        except OSError as exc:
            print(f"wsh mcp: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILED
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format=LOG_FORMAT)
    # uvicorn stops on SIGINT or SIGTERM, then raises the signal again once it
    # has shut down; as an interrupt, SIGTERM then ends with status 0 like SIGINT.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(_serve(args, token, sock))
    except KeyboardInterrupt:
        return 0
    except ValueError as exc:  # a bad --addr or TLS option
        print(f"wsh mcp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a CA file, certificate or key that cannot be read
        print(f"wsh mcp: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    return 0
