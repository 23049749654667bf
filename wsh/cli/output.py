"""Where results, warnings and failures go, as text or JSON, and each failure's exit status."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, cast

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from wsh.cli.render import printable
from wsh.client import WshRpcError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4
EXIT_UNAVAILABLE = 5
EXIT_AUTH = 6
EXIT_NOT_HEALTHY = 7
EXIT_REJECTED = 8
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
# 128 + SIGPIPE: what a shell reports for `cat`, `yes`... whose reader went
# away, so `set -o pipefail` scripts see wsh like any other tool. (Python
# ignores SIGPIPE and raises BrokenPipeError instead; its docs warn against
# restoring SIG_DFL, which would also kill wsh on a broken gRPC socket.)
EXIT_BROKEN_PIPE = 141

EXIT_STATUSES = (
    (EXIT_OK, "success"),
    (EXIT_ERROR, "any other failure"),
    (EXIT_USAGE, "usage error: bad arguments"),
    (EXIT_NOT_FOUND, "not found: NOT_FOUND (no such session or server)"),
    (EXIT_TIMEOUT, "timed out: IDLE_TIMEOUT (--max-wait-ms), DEADLINE_EXCEEDED (--deadline-s)"),
    (EXIT_UNAVAILABLE, "unavailable: server unreachable, SERVER_UNAVAILABLE (a backend down)"),
    (EXIT_AUTH, "not allowed: UNAUTHENTICATED, PERMISSION_DENIED"),
    (EXIT_NOT_HEALTHY, "servers add: registered but not healthy yet; the hub keeps retrying"),
    (EXIT_REJECTED, "servers add: the backend was rejected (self loop, hostname taken)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_BROKEN_PIPE, "standard output closed early (piped into head...)"),
)

_CODE_EXITS = {
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_TIMEOUT,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
}
# Reasons first: they are the stable contract, whatever code carries them.
_REASON_EXITS = {"IDLE_TIMEOUT": EXIT_TIMEOUT, "SERVER_UNAVAILABLE": EXIT_UNAVAILABLE}


def exit_status(exc: WshRpcError) -> int:
    """The exit status for a failed call."""
    return _REASON_EXITS.get(exc.reason) or _CODE_EXITS.get(exc.code, EXIT_ERROR)


class Failure(Exception):
    """A command that failed, as reported to the user: text or a JSON object.

    ``code`` is a gRPC status code name, ``reason`` the ErrorInfo reason (or
    one of the CLI's own: ``USAGE``, ``FILE_UNREADABLE``, ``SERVER_NOT_HEALTHY``,
    ``SERVER_REJECTED``); ``hint`` is a next step for a person.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        reason: str = "",
        metadata: dict[str, str] | None = None,
        hint: str = "",
        exit_status: int = EXIT_ERROR,
        labelled: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.hint = hint
        self.exit_status = exit_status
        self._labelled = labelled

    def text(self) -> str:
        """The ``wsh: error:`` line for a person, reason first when there is one."""
        label = f"{self.reason or self.code}: " if self._labelled else ""
        return f"wsh: error: {printable(label + self.message)}"

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "metadata": self.metadata,
        }
        if self.hint:
            data["hint"] = self.hint
        return data


class Quiet(Failure):
    """Not an error: a command that ends with ``status`` and nothing more to
    say (``wsh attach`` with the session's exit code)."""

    def __init__(self, status: int) -> None:
        super().__init__("", exit_status=status)


class UsageError(Failure):
    """A command line that does not parse, or parses but makes no sense; exit status 2."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(
            message,
            code="INVALID_ARGUMENT",
            reason="USAGE",
            hint=hint,
            exit_status=EXIT_USAGE,
            labelled=False,
        )


def rpc_failure(exc: WshRpcError, addr: str) -> Failure:
    """How a failed call is reported, with a hint where the fix is known."""
    if exc.code == grpc.StatusCode.UNAVAILABLE and not exc.reason:
        return Failure(
            f"cannot reach a wsh server at {addr}: {exc.message}",
            code=exc.code.name,
            hint="start one with `wsh server`, or point --addr (or WSH_ADDR) at a running one",
            exit_status=EXIT_UNAVAILABLE,
        )
    hint = ""
    if exc.code == grpc.StatusCode.UNAUTHENTICATED:
        hint = "pass the server's token with --token or WSH_TOKEN"
    return Failure(
        exc.message,
        code=exc.code.name,
        reason=exc.reason,
        metadata=exc.metadata,
        hint=hint,
        exit_status=exit_status(exc),
    )


_INT64 = frozenset({FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64})


def _int(value: object) -> object:
    return int(value) if isinstance(value, str) else value


def _numbers(descriptor: Descriptor, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (``descriptor``'s JSON form) with 64-bit integers as JSON numbers.

    Proto3's JSON mapping writes them as strings because JavaScript's numbers
    lose precision past 2**53; every field here (generations, byte counts,
    milliseconds) stays far below that, and a number is what a script expects.
    Well-known types keep their own JSON forms (a Timestamp is a string).
    """
    for name, value in data.items():
        field = descriptor.fields_by_name.get(name)
        if field is None:
            continue
        repeated = isinstance(value, list)
        if field.cpp_type in _INT64:
            data[name] = [_int(v) for v in value] if repeated else _int(value)
            continue
        sub = field.message_type
        if sub is None or sub.full_name.startswith("google.protobuf."):
            continue
        if sub.GetOptions().map_entry:
            entry = sub.fields_by_name["value"]
            if entry.cpp_type in _INT64:
                data[name] = {k: _int(v) for k, v in value.items()}
            elif entry.message_type is not None:
                for item in value.values():
                    _numbers(entry.message_type, item)
        elif repeated:
            for item in value:
                _numbers(sub, item)
        else:
            _numbers(sub, value)
    return data


def to_dict(message: Message) -> dict[str, Any]:
    """JSON form of ``message``: proto field names, defaults included, 64-bit ints as numbers."""
    data = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _numbers(cast(Descriptor, message.DESCRIPTOR), data)


class Output:
    """Where results, warnings and errors go: the one place choosing text or JSON.

    Text: results on stdout for people, warnings and errors as ``wsh:`` lines
    on stderr. JSON: each result is one JSON document on stdout (one line
    each when ``compact``, as ``race --all`` streams them), warnings are left
    to the result document, and a failure is one JSON object on stderr.
    """

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode

    def result(
        self, data: Message | object, text: str | Sequence[str] | None, *, compact: bool = False
    ) -> None:
        """Print a result: ``data`` as JSON, or ``text`` (a string, or lines).

        ``data`` None (a call that returns nothing) is ``{}``: scripts parsing
        --json output get a value from every command.
        """
        if self.json:
            value = to_dict(data) if isinstance(data, Message) else {} if data is None else data
            print(json.dumps(value, ensure_ascii=False, indent=None if compact else 2))
        elif isinstance(text, str):
            print(text)
        elif text is not None:
            for line in text:
                print(line)
        # Streams (race --all) must reach a reader as each result comes.
        sys.stdout.flush()

    def warning(self, text: str) -> None:
        """Something a person should know; in JSON mode the result carries it."""
        if not self.json:
            print(f"wsh: warning: {printable(text)}", file=sys.stderr)

    def error(self, failure: Failure) -> None:
        """A failure: ``wsh: error:`` and ``hint:`` lines, or one JSON object."""
        if isinstance(failure, Quiet):
            return
        if self.json:
            print(json.dumps(failure.to_json(), ensure_ascii=False), file=sys.stderr)
            return
        print(failure.text(), file=sys.stderr)
        for line in failure.hint.splitlines():
            print(f"hint: {printable(line)}", file=sys.stderr)
