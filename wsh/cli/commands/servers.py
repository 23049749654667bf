"""The cluster's servers: servers list, get, add, remove, reload; and info (this server)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterable

from wsh.cli.commands import nothing, shows
from wsh.cli.output import (
    EXIT_NOT_HEALTHY,
    EXIT_REJECTED,
    Failure,
    Output,
    rpc_failure,
)
from wsh.cli.render import (
    MESSAGE_ERROR_CHARS,
    SERVER_HEADERS,
    format_table,
    health,
    human_ms,
    info_details,
    reload_changes,
    server_details,
    server_label,
    server_row,
    server_status,
)
from wsh.cli.spinner import Spinner
from wsh.client import Client, WshRpcError
from wsh.v1 import hub_pb2


def list_servers(client: Client, args: argparse.Namespace, out: Output) -> None:
    servers = client.list_servers()
    # JSON: an object like `list`'s, {"servers": [...]}.
    listed = hub_pb2.ListServersResponse(servers=servers)
    out.result(listed, format_table(SERVER_HEADERS, map(server_row, servers)))


@shows(server_details)
def get_server(client: Client, args: argparse.Namespace) -> hub_pb2.Server:
    return client.get_server(args.hostname)


def find_server(servers: Iterable[hub_pb2.Server], address: str) -> hub_pb2.Server | None:
    """The registered server at ``address`` (a trailing ``/`` aside)."""
    wanted = address.rstrip("/")
    return next((s for s in servers if s.address.rstrip("/") == wanted), None)


def _add_progress(client: Client, address: str) -> Callable[[], str]:
    """What the spinner of ``servers add`` shows: the backend's health as the hub sees it."""

    def status() -> str:
        try:
            # Short: a slow answer only delays the next spinner frame.
            server = find_server(client.list_servers(timeout=2.0), address)
        except WshRpcError:
            return ""
        return server_status(server) if server is not None else "registering"

    return status


def _remove_hint(server: hub_pb2.Server) -> str:
    # By address: a rejected backend may carry a hostname that is not its own
    # (a self loop has the hub's), which `remove HOST` would refuse.
    return f"to remove it: wsh servers remove {server.address}"


def _already_registered(client: Client, exc: WshRpcError, address: str) -> Failure:
    failure = rpc_failure(exc, client.addr)
    registered = exc.metadata.get("address") or address
    try:
        server = find_server(client.list_servers(), registered)
    except WshRpcError:
        server = None
    if server is None:
        return failure
    status = server_status(server, MESSAGE_ERROR_CHARS)
    failure.message = f"{server_label(server)} is already registered; it is {status}"
    failure.metadata.update(health=health(server), last_error=server.last_error)
    failure.hint = f"`wsh servers` shows its state; {_remove_hint(server)}"
    return failure


def _not_healthy(server: hub_pb2.Server, waited_ms: int) -> Failure:
    metadata = {
        "address": server.address,
        "health": health(server),
        "last_error": server.last_error,
    }
    if server.health == hub_pb2.SERVER_HEALTH_REJECTED:
        return Failure(
            f"{server_label(server)} was rejected: {server.last_error or 'no reason given'}",
            code="FAILED_PRECONDITION",
            reason="SERVER_REJECTED",
            metadata=metadata,
            hint="the hub will not retry it, nor save it in its config file, but lists it "
            f"until removed;\n{_remove_hint(server)}",
            exit_status=EXIT_REJECTED,
            labelled=False,
        )
    return Failure(
        f"{server_label(server)} is not healthy after {human_ms(waited_ms)}: "
        f"{server_status(server, MESSAGE_ERROR_CHARS)}",
        code="UNAVAILABLE",
        reason="SERVER_NOT_HEALTHY",
        metadata=metadata,
        hint="it IS registered and saved in the hub's config file: the hub keeps retrying in "
        f"the background and `wsh servers` shows its health;\n{_remove_hint(server)}",
        exit_status=EXIT_NOT_HEALTHY,
        labelled=False,
    )


# The hub's default and cap for AddServer's wait_timeout_ms.
_ADD_WAIT_DEFAULT_MS = 10_000
_ADD_WAIT_CAP_MS = 120_000


def add_server(client: Client, args: argparse.Namespace, out: Output) -> None:
    wait = not args.no_wait
    waiting = (
        Spinner(f"adding {args.address}", status=_add_progress(client, args.address))
        if wait
        else contextlib.nullcontext()
    )
    try:
        with waiting:
            server = client.add_server(
                args.address,
                token=args.backend_token,
                wait=wait,
                wait_timeout_ms=args.wait_timeout_ms,
            )
    except WshRpcError as exc:
        if exc.reason == "SERVER_ALREADY_REGISTERED":
            raise _already_registered(client, exc, args.address) from None
        raise
    out.result(server, server_details(server))
    if wait and server.health != hub_pb2.SERVER_HEALTH_HEALTHY:
        waited = min(args.wait_timeout_ms or _ADD_WAIT_DEFAULT_MS, _ADD_WAIT_CAP_MS)
        raise _not_healthy(server, waited)


@shows(nothing)
def remove_server(client: Client, args: argparse.Namespace) -> None:
    target: str = args.host_or_address
    if "://" in target:
        client.remove_server(address=target)
    else:
        client.remove_server(target)


def reload_config(client: Client, args: argparse.Namespace, out: Output) -> None:
    result = client.reload_config()
    out.result(result, reload_changes(result))
    for warning in result.warnings:
        out.warning(warning)


@shows(info_details)
def info(client: Client, args: argparse.Namespace) -> hub_pb2.GetServerInfoResponse:
    return client.get_server_info()
