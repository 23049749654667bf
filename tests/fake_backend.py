"""A fake wsh backend that lies to its hub, for tests/e2e/test_lying_backend.py.

Run as ``python -m tests.fake_backend CONFIG_JSON``; it serves on
127.0.0.1:0 and prints ``fake: listening on 127.0.0.1:PORT``. CONFIG keys:

``hostname``, ``server_id``
    the identity it claims.
``link``
    how its Link behaves: ``normal`` (identity, inventory, heartbeat acks),
    ``silent`` (never sends anything), ``identity-only`` (identity, then
    nothing), ``heartbeat-first`` (a heartbeat instead of its identity),
    ``flood`` (identity, inventory, then upserts of ever new sessions, as fast
    as the hub takes them), ``echo`` (fails at once with :func:`evil_text`:
    escape sequences, a forged log line and the token the hub presented).
``sessions``
    the inventory: a list of ``types_pb2.Session`` as dicts (json_format).
``generated``
    that many more valid sessions (``gen-0``, ``gen-1``, ...) in the inventory.
``calls``
    a file to which every HubService call is appended, one method a line.
``activity``
    ``SessionActivity`` entries (as dicts) sent with every heartbeat ack, and
    every 0.5 s on its own, as a backend reports activity between the hub's
    heartbeats.
``headers``
    a file to which the request id and trace headers of every GetSession are
    appended, one JSON object a line.

Its HubService lies, by what the request asks for: the session name or tag
picks the lie (see ``LyingHub``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from wsh.v1 import backend_pb2, backend_pb2_grpc, hub_pb2, hub_pb2_grpc, types_pb2

MIB = 1024 * 1024


def session(name: str, hostname: str, **fields: Any) -> types_pb2.Session:
    pb = types_pb2.Session(
        name=name,
        server=hostname,
        command="cat",
        pid=4242,
        rows=24,
        cols=80,
        state=types_pb2.SESSION_STATE_RUNNING,
        generation=1,
    )
    for key, value in fields.items():
        if key == "tags":
            pb.tags.extend(value)
        else:
            setattr(pb, key, value)
    return pb


def screen(rows: int = 24, cols: int = 80, lines: list[str] | None = None) -> types_pb2.Screen:
    return types_pb2.Screen(
        rows=rows, cols=cols, lines=lines if lines is not None else ["$"], generation=1
    )


def idle(name: str, server: str, scr: types_pb2.Screen | None = None) -> types_pb2.Idle:
    return types_pb2.Idle(session=name, server=server, generation=1, screen=scr or screen())


class FakeLink(backend_pb2_grpc.BackendServiceServicer):
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.hostname: str = config["hostname"]
        self.mode: str = config.get("link", "normal")

    def identity(self) -> backend_pb2.LinkResponse:
        return backend_pb2.LinkResponse(
            identity=backend_pb2.Identity(
                hostname=self.hostname,
                server_id=self.config.get("server_id", "fake-" + os.urandom(4).hex()),
                version="0.0.0-fake",
            )
        )

    def inventory(self) -> backend_pb2.LinkResponse:
        inventory = backend_pb2.Inventory()
        for entry in self.config.get("sessions", ()):
            inventory.sessions.append(json_format.ParseDict(entry, types_pb2.Session()))
        template = session("gen", self.hostname)
        for i in range(self.config.get("generated", 0)):
            template.name = f"gen-{i}"
            inventory.sessions.append(template)
        # Every session says it settled long ago, so that races ask for it.
        for listed in inventory.sessions:
            inventory.states.add(
                name=listed.name, generation=listed.generation, quiet=True, quiet_ms=60_000
            )
        return backend_pb2.LinkResponse(inventory=inventory)

    async def report(self, outgoing: asyncio.Queue[backend_pb2.LinkResponse]) -> None:
        while True:
            await asyncio.sleep(0.5)
            beat = backend_pb2.Heartbeat()
            for entry in self.config.get("activity", ()):
                json_format.ParseDict(entry, beat.activity.add())
            outgoing.put_nowait(backend_pb2.LinkResponse(heartbeat=beat))

    async def Link(
        self, request_iterator: AsyncIterator[backend_pb2.LinkRequest], context: Any
    ) -> AsyncIterator[backend_pb2.LinkResponse]:
        outgoing: asyncio.Queue[backend_pb2.LinkResponse] = asyncio.Queue()

        async def read() -> None:
            async for msg in request_iterator:
                if msg.WhichOneof("message") == "heartbeat":
                    ack = backend_pb2.Heartbeat(seq=msg.heartbeat.seq, ack_seq=msg.heartbeat.seq)
                    for entry in self.config.get("activity", ()):
                        json_format.ParseDict(entry, ack.activity.add())
                    outgoing.put_nowait(backend_pb2.LinkResponse(heartbeat=ack))

        reader = asyncio.get_running_loop().create_task(read())
        try:
            if self.mode == "echo":
                await context.abort(grpc.StatusCode.INTERNAL, evil_text(context))
            if self.mode == "silent":
                await asyncio.sleep(3600)
                return
            if self.mode == "heartbeat-first":
                yield backend_pb2.LinkResponse(heartbeat=backend_pb2.Heartbeat(seq=1))
                await asyncio.sleep(3600)
                return
            yield self.identity()
            if self.mode == "identity-only":
                await asyncio.sleep(3600)
                return
            yield self.inventory()
            if self.config.get("activity"):
                reporter = asyncio.get_running_loop().create_task(self.report(outgoing))
                reader.add_done_callback(lambda _: reporter.cancel())
            if self.mode == "flood":
                template = backend_pb2.LinkResponse(
                    event=backend_pb2.SessionEvent(upsert=session("flood", self.hostname))
                )
                for i in itertools.count():
                    template.event.upsert.name = f"flood-{i}"
                    yield template
            while True:
                yield await outgoing.get()
        finally:
            reader.cancel()


def rich_abort_metadata(code: grpc.StatusCode, reason: str, message: str) -> Any:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="wsh.v1", metadata={"k": message})
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


ANSI = "\x1b[2J\x1b[31mpwned\x1b]0;title\x07\r\n"
# Starts a line of its own in a log that takes text raw; tests look for it.
FORGED = "FORGED-LOG-LINE 2026-01-01 00:00:00,000 WARNING wsh.server: all is well"


def presented_token(context: Any) -> str:
    """The token the caller presented (a lying backend may echo it back)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return str(value).removeprefix("Bearer ")
    return ""


def evil_text(context: Any) -> str:
    """What a hostile backend puts in an error: escape sequences, a newline
    that forges a log line, and the caller's own token."""
    return f"failed {ANSI}token={presented_token(context)}\n{FORGED}\x1b[0m"


class LyingHub(hub_pb2_grpc.HubServiceServicer):
    """Answers by the session name (or tag) asked about:

    ``rows5000``: a screen of 5000 rows; ``lines5000``: 5000 lines on a
    24-row screen; ``wide``: lines of 1 MiB; ``other-name``: a session or
    idle of another name; ``err-internal``, ``err-unknown``, ``err-ansi``,
    ``err-garbage``: failures (INTERNAL with ErrorInfo, an exception,
    NOT_FOUND whose message holds escape sequences, undecodable details);
    AwaitIdle (which races ask) of ``echo*`` fails with :func:`evil_text`,
    of ``flood*`` answers with a 1000x1000 screen;
    anything else: a plausible answer that claims server ``elsewhere``.
    ListSessions lies by tag: ``bad-names`` (invalid session names),
    ``many`` (50,000 sessions), ``hang`` (no answer at all); else sessions
    of server ``elsewhere``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.hostname: str = config["hostname"]
        self.calls_file = Path(config["calls"]) if config.get("calls") else None
        self.headers_file = Path(config["headers"]) if config.get("headers") else None

    def _called(self, method: str) -> None:
        if self.calls_file is not None:
            with self.calls_file.open("a") as f:
                f.write(method + "\n")

    async def _fail(self, name: str, context: Any) -> None:
        if name == "err-internal":
            await context.abort(
                grpc.StatusCode.INTERNAL,
                "internal " + ANSI,
                rich_abort_metadata(grpc.StatusCode.INTERNAL, "SESSION_NOT_FOUND", ANSI),
            )
        if name == "err-unknown":
            raise RuntimeError("boom " + ANSI)
        if name == "err-ansi":
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                "no such session " + ANSI,
                rich_abort_metadata(grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", ANSI),
            )
        if name == "err-reason":
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                "no such session",
                rich_abort_metadata(grpc.StatusCode.NOT_FOUND, "NOT\x1b[2JFOUND", "x"),
            )
        if name == "err-mismatch":
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                "no such session",
                rich_abort_metadata(grpc.StatusCode.INTERNAL, "SESSION_NOT_FOUND", "x"),
            )
        if name == "err-garbage":
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                "garbage details",
                (("grpc-status-details-bin", b"\xff\xfe not a status"),),
            )

    def _session(self, name: str) -> types_pb2.Session:
        if name == "other-name":
            return session("somebody-else", "elsewhere")
        return session(name, "elsewhere")

    def _screen(self, name: str) -> types_pb2.Screen:
        if name == "rows5000":
            return screen(rows=5000, lines=["x"] * 5000)
        if name == "lines5000":
            return screen(lines=["x"] * 5000)
        if name == "wide":
            return screen(lines=["w" * MIB] * 3)
        if name == "ansi":
            return screen(lines=[ANSI])
        return screen()

    async def GetSession(self, request: Any, context: Any) -> Any:
        self._called("GetSession")
        if self.headers_file is not None:
            wanted = ("x-request-id", "traceparent", "tracestate", "baggage")
            seen = {k: v for k, v in context.invocation_metadata() if k in wanted}
            with self.headers_file.open("a") as f:
                f.write(json.dumps(seen) + "\n")
        await self._fail(request.name, context)
        return hub_pb2.GetSessionResponse(session=self._session(request.name))

    async def CreateSession(self, request: Any, context: Any) -> Any:
        self._called("CreateSession")
        await self._fail(request.name, context)
        return hub_pb2.CreateSessionResponse(session=self._session(request.name or "made"))

    async def UpdateSession(self, request: Any, context: Any) -> Any:
        self._called("UpdateSession")
        await self._fail(request.name, context)
        return hub_pb2.UpdateSessionResponse(
            session=self._session(request.new_name or request.name)
        )

    async def ResizeSession(self, request: Any, context: Any) -> Any:
        self._called("ResizeSession")
        await self._fail(request.name, context)
        return hub_pb2.ResizeSessionResponse(session=self._session(request.name))

    async def KillSession(self, request: Any, context: Any) -> Any:
        self._called("KillSession")
        await self._fail(request.name, context)
        return hub_pb2.KillSessionResponse()

    async def SendInput(self, request: Any, context: Any) -> Any:
        self._called("SendInput")
        await self._fail(request.name, context)
        return hub_pb2.SendInputResponse(generation=2**64 - 1)

    async def GetScreen(self, request: Any, context: Any) -> Any:
        self._called("GetScreen")
        await self._fail(request.name, context)
        return hub_pb2.GetScreenResponse(screen=self._screen(request.name))

    async def GetScrollback(self, request: Any, context: Any) -> Any:
        self._called("GetScrollback")
        await self._fail(request.name, context)
        if request.name == "lines5000":
            return hub_pb2.GetScrollbackResponse(lines=["x"] * 50_000, total_lines=50_000)
        if request.name == "wide":
            return hub_pb2.GetScrollbackResponse(lines=["w" * MIB] * 3, total_lines=3)
        return hub_pb2.GetScrollbackResponse(lines=["x"], total_lines=1)

    async def AwaitIdle(self, request: Any, context: Any) -> Any:
        self._called("AwaitIdle")
        await self._fail(request.name, context)
        if request.name.startswith("echo"):
            await context.abort(grpc.StatusCode.INTERNAL, evil_text(context))
        if request.name.startswith("flood"):
            big = screen(rows=1000, cols=1000, lines=["f" * 1000] * 1000)
            return hub_pb2.AwaitIdleResponse(idle=idle(request.name, "elsewhere", big))
        if request.name == "other-name":
            return hub_pb2.AwaitIdleResponse(idle=idle("somebody-else", "elsewhere"))
        return hub_pb2.AwaitIdleResponse(
            idle=idle(request.name, "elsewhere", self._screen(request.name))
        )

    async def ListSessions(self, request: Any, context: Any) -> Any:
        self._called("ListSessions")
        tags = set(request.tags)
        if "hang" in tags:
            await asyncio.sleep(3600)
        if "bad-names" in tags:
            names = ["ok", "a b", "\x1b[2J", "x" * 65]
        elif "many" in tags:
            names = [f"m-{i}" for i in range(50_000)]
        else:
            names = ["liar"]
        return hub_pb2.ListSessionsResponse(
            sessions=[session(n, "elsewhere", tags=list(tags)) for n in names]
        )

    async def GetServerInfo(self, request: Any, context: Any) -> Any:
        return hub_pb2.GetServerInfoResponse(hostname=self.hostname)


async def main(config: dict[str, Any]) -> None:
    server = grpc.aio.server(
        # Like a real wsh server, it accepts the hub's keepalive pings, so
        # that only the lies under test can end a Link.
        options=[
            ("grpc.max_send_message_length", 64 * MIB),
            ("grpc.max_receive_message_length", 64 * MIB),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 500),
            ("grpc.http2.max_ping_strikes", 0),
        ]
    )
    backend_pb2_grpc.add_BackendServiceServicer_to_server(FakeLink(config), server)
    hub_pb2_grpc.add_HubServiceServicer_to_server(LyingHub(config), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"fake: listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
