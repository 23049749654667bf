"""``wsh web``: the web view (the cluster, live terminals, races) for one hub.

Serves the built app (:mod:`wsh.web`, ``static/``) and a gRPC-Web bridge to
the hub on one port. The token is typed once into the page and sent by the
browser with every call; with ``--token-file`` or ``$WSH_TOKEN`` the bridge
checks it before anything reaches the hub. Listening off loopback requires
that token (as ``wsh server`` does). Exit statuses: 0 after SIGTERM or
SIGINT, 1 when it cannot start, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from wsh.client._address import credentials, parse_addr
from wsh.client._aio_io import open_channel
from wsh.defaults import DEFAULT_ADDR
from wsh.server import is_loopback_listen

log = logging.getLogger("wsh.web")

DEFAULT_LISTEN = "127.0.0.1:7680"
MIN_TOKEN_LEN = 16
EXIT_FAILED = 1
EXIT_USAGE = 2


class StartError(Exception):
    """Why ``wsh web`` cannot start, as ``REASON: message``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsh web",
        description="Serve the web view of a hub: its cluster, live terminals and races, "
        "in a browser, over gRPC-Web.",
    )
    parser.add_argument(
        "--addr",
        help=f"the hub: host:port, http://... or https://... "
        f"(default: $WSH_ADDR, else {DEFAULT_ADDR})",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where to serve the page (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="the hub's token (first line); the page must present it, and the bridge checks "
        "it before forwarding (default: $WSH_TOKEN; required off loopback)",
    )
    parser.add_argument("--ca-file", help="PEM roots to trust for an https:// hub")
    parser.add_argument("--client-cert", help="PEM certificate presented to the hub (mTLS)")
    parser.add_argument("--client-key", help="its key")
    parser.add_argument("--tls-cert", type=Path, help="serve the page over HTTPS: certificate")
    parser.add_argument("--tls-key", type=Path, help="and its key")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this Host name on a loopback listen address "
        "(a reverse proxy's name); others are refused against DNS rebinding",
    )
    return parser


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    return host, int(port)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            lines = args.token_file.read_text().splitlines()
        except OSError as exc:
            raise StartError(f"TOKEN_FILE: cannot read {args.token_file}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
    else:
        token = os.environ.get("WSH_TOKEN", "").strip()
    if token and len(token) < MIN_TOKEN_LEN:
        raise StartError(
            f"TOKEN_TOO_SHORT: the token must have at least {MIN_TOKEN_LEN} characters"
        )
    return token or None


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise StartError(f"TLS_INVALID: {exc}") from None
    return context


async def _run(args: argparse.Namespace) -> None:
    from wsh.web.server import WebConfig, serve_web

    host, port = _split_listen(args.listen)
    loopback = is_loopback_listen(args.listen)
    token = _token(args)
    if not loopback and token is None:
        raise StartError(
            f"TOKEN_REQUIRED: serving on {args.listen} (not loopback) needs the hub's token: "
            "pass --token-file or set WSH_TOKEN"
        )
    context = _ssl_context(args)
    if not loopback and context is None:
        log.warning(
            "serving on %s without TLS: the token crosses the network in clear", args.listen
        )
    addr = args.addr or os.environ.get("WSH_ADDR") or DEFAULT_ADDR
    endpoint = parse_addr(addr)
    channel_credentials = credentials(
        endpoint, False, args.ca_file, args.client_cert, args.client_key
    )
    channel = open_channel(endpoint.target, channel_credentials)
    config = WebConfig(
        listen_host=host,
        listen_port=port,
        loopback=loopback,
        token=token,
        allowed_hosts=tuple(name.lower() for name in args.allow_host),
        ssl_context=context,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(url: str) -> None:
        # The URL carries no token: the page asks for it.
        print(f"wsh web: serving {url} for the hub at {addr}", file=sys.stderr, flush=True)

    try:
        await serve_web(config, channel, endpoint.prefix, stop, ready)
    finally:
        await channel.close(None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wsh web``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_run(args))
    except ValueError as exc:
        print(f"wsh web: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StartError as exc:
        print(f"wsh web: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(
            f"wsh web: LISTEN_FAILED: cannot listen on {args.listen}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0
