"""The ``wsh`` argument parser: global options, subcommands and their options, option types.

``wsh server ...`` is handed over to :mod:`wsh.cli.server` before this parser runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from wsh import __version__
from wsh.cli.commands import Handler, attach, servers, sessions, waiting, watching
from wsh.cli.output import EXIT_STATUSES
from wsh.client import DEFAULT_IDLE_MS
from wsh.defaults import DEFAULT_ADDR


class ParseError(Exception):
    """A command line argparse refused, with the (sub)command parser that refused it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message

    def print_text(self) -> None:
        """What argparse prints: the usage line, then ``PROG: error: MESSAGE``."""
        self.parser.print_usage(sys.stderr)
        print(f"{self.parser.prog}: error: {self.message}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    # Raises instead of printing and exiting, so that the caller can report the
    # error as text or as JSON. Subcommand parsers are of the same class.
    def error(self, message: str) -> NoReturn:
        raise ParseError(self, message)


# --- Option types --------------------------------------------------------------------


def _uint(bits: int) -> Callable[[str], int]:
    limit = 2**bits - 1

    def parse(text: str) -> int:
        value = int(text)
        if not 0 <= value <= limit:
            raise argparse.ArgumentTypeError(f"must be between 0 and {limit}")
        return value

    # argparse names the type in its error messages.
    parse.__name__ = "integer"
    return parse


_uint32 = _uint(32)
_uint64 = _uint(64)


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


class RenamedOption(argparse.Action):
    """An old option name: hidden from --help, still works, says its new name on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new_name: str, **kw: Any):
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)
        self.new_name = new_name

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"wsh: warning: {option_string} is deprecated, use {self.new_name}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _renamed(parser: argparse._ActionsContainer, old: str, new: str, **kw: Any) -> None:
    # SUPPRESS: the new option's default must win when the old one is absent.
    parser.add_argument(old, action=RenamedOption, new_name=new, default=argparse.SUPPRESS, **kw)


def _global_options(*, nested: bool, token: bool = True) -> argparse.ArgumentParser:
    """Connection and output options, accepted before and after the command name.

    On subcommands the defaults are SUPPRESS so that a value given before the
    command is not overwritten by the subcommand's default.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection and output")

    def default(value: object) -> object:
        return argparse.SUPPRESS if nested else value

    group.add_argument(
        "--addr",
        default=default(None),
        help=f"server address: host:port, http://... or https://... "
        f"(default: $WSH_ADDR, else {DEFAULT_ADDR})",
    )
    if token:
        group.add_argument(
            "--token",
            default=default(None),
            help="bearer token (default: $WSH_TOKEN, which unlike an argument "
            "is not visible to other users in the process list)",
        )
    group.add_argument("--ca-file", default=default(None), help="PEM CA bundle; implies TLS")
    group.add_argument("--client-cert", default=default(None), help="PEM client certificate (mTLS)")
    group.add_argument("--client-key", default=default(None), help="PEM client key (mTLS)")
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="results as JSON on stdout, a failure as one JSON object on stderr",
    )
    group.add_argument(
        "--deadline-s",
        type=_seconds,
        default=default(None),
        metavar="SECONDS",
        help="client-side deadline of each call: past it the call is cancelled, "
        "DEADLINE_EXCEEDED (default: none)",
    )
    _renamed(group, "--timeout", "--deadline-s", type=_seconds, dest="deadline_s")
    return parser


# --- Options shared by several commands ----------------------------------------------


def _add_server_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--server", default="", metavar="HOST", help=help)


def _add_tags(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--tag", action="append", metavar="T", help=help)


def _add_count(parser: argparse.ArgumentParser, option: str, metavar: str, help: str) -> None:
    # A 32-bit count or duration; 0, the default, means "not given".
    parser.add_argument(option, type=_uint32, default=0, metavar=metavar, help=help)


def _add_session(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="session name")
    _add_server_option(parser, "hostname of the server owning the session (default: this one)")


def _add_styled(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--styled", action="store_true", help="colours and attributes (on a terminal or in JSON)"
    )


IDLE_EPILOG = """\
"Idle" means the session printed nothing for --quiet-ms milliseconds. It does
not mean the program finished: one that is silent for longer (a `sleep 3`, a
slow build step) looks idle too; raise --quiet-ms for it, or use --ready.

With --ready a session has settled when its foreground program waits for
input on the terminal (a shell at its prompt, a REPL, an editor), whatever
the silence: a `sleep 3` is not ready until it ends. Where the server cannot
tell (no /proc), --quiet-ms of silence settles it instead.

Bounds:
  --quiet-ms MS      the silence that counts as idle (default 500)
  --max-wait-ms MS   the server gives up when no idle moment came within this:
                     IDLE_TIMEOUT, exit status 4 (default: the server's, 30000;
                     at most 300000)
  --deadline-s S     this command gives up after S seconds whatever the server
                     does: DEADLINE_EXCEEDED, exit status 4 (default: none);
                     keep it above --max-wait-ms to see the server's answer
"""


def _add_idle_options(parser: argparse.ArgumentParser, *, full: bool) -> None:
    parser.add_argument(
        "--quiet-ms",
        type=_uint32,
        default=DEFAULT_IDLE_MS,
        metavar="MS",
        help="idle means no output for this long (default: %(default)s)",
    )
    _renamed(parser, "--timeout-ms", "--quiet-ms", type=_uint32, dest="quiet_ms")
    _add_count(
        parser,
        "--max-wait-ms",
        "MS",
        "fail with IDLE_TIMEOUT if not idle within this long (default: the server's, 30000)",
    )
    if full:
        parser.add_argument(
            "--ready",
            action="store_true",
            help="settled means the foreground program waits for input (see below)",
        )
        parser.add_argument(
            "--last-generation",
            type=_uint64,
            help="generation already seen: wait for newer activity first",
        )
        parser.add_argument(
            "--fresh", action="store_true", help="always wait a full --quiet-ms of silence"
        )
    _add_styled(parser)


def _add_text(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "text",
        metavar="TEXT",
        nargs="?",
        help=r"input; escapes \n \r \t \e \\ \0 \xNN \uNNNN (\n is Enter, \x03 is Ctrl-C)",
    )
    parser.add_argument("--no-escapes", action="store_true", help="send TEXT verbatim")
    parser.add_argument("--stdin", action="store_true", help="send standard input's bytes")


# --- Commands ------------------------------------------------------------------------


class _Commands:
    """A list of subcommands that all accept the same ``parents``' options."""

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        parents: Sequence[argparse.ArgumentParser],
        dest: str,
        metavar: str,
        *,
        required: bool,
    ) -> None:
        self.choices = parser.add_subparsers(dest=dest, metavar=metavar, required=required)
        self._parents = list(parents)

    def add(
        self, name: str, handler: Handler, help: str, epilog: str | None = None
    ) -> argparse.ArgumentParser:
        sub = self.choices.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=self._parents,
        )
        sub.set_defaults(handler=handler)
        return sub


def _main_epilog() -> str:
    statuses = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_STATUSES)
    return f"""\
exit status:
{statuses}

With --json, a result is JSON on stdout and a failure one JSON object on stderr:
  {{"code": "NOT_FOUND", "reason": "SESSION_NOT_FOUND", "message": "...", "metadata": {{...}}}}
(plus "hint" when there is one); a usage error (2) too, with "reason": "USAGE".

Start a server with `wsh server` (see `wsh server --help`).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``wsh`` argument parser; it raises :class:`ParseError` on a bad command line."""
    parser = _Parser(
        prog="wsh",
        description="Terminal sessions on real PTYs, for agents and people.",
        epilog=_main_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(nested=False)],
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    commands = _Commands(
        parser, [_global_options(nested=True)], "command", "COMMAND", required=True
    )
    command = commands.add

    # Listed for --help; main() hands `wsh server ...` to wsh.cli.server and
    # `wsh mcp ...` to wsh.cli.mcp first.
    commands.choices.add_parser(
        "server", help="run a server (its options: wsh server --help)", add_help=False
    ).set_defaults(handler=None)
    commands.choices.add_parser(
        "mcp", help="serve the cluster over MCP, for agents (wsh mcp --help)", add_help=False
    ).set_defaults(handler=None)

    sub = command("create", sessions.create, "start a session")
    sub.add_argument("name", metavar="NAME", nargs="?", default="", help="default: server picks")
    _add_server_option(sub, "hostname of the server to run it on (default: this one)")
    sub.add_argument("--command", default="", help="command line (default: a login shell)")
    sub.add_argument("--rows", type=_uint32, default=0, help="default: 24")
    sub.add_argument("--cols", type=_uint32, default=0, help="default: 80")
    sub.add_argument("--cwd", default="", help="working directory (default: home)")
    sub.add_argument(
        "--env", type=_env_pair, action="append", metavar="K=V", help="environment (repeatable)"
    )
    _add_tags(sub, "tag (repeatable)")

    sub = command(
        "list",
        sessions.list_sessions,
        "list sessions",
        epilog="Servers whose sessions could not be listed (not healthy) are named in a "
        "warning\non stderr; with --json the output is "
        '{"sessions": [...], "missing_servers": [...]}.',
    )
    _add_tags(sub, "having any of these tags")
    _add_server_option(sub, "only this server's sessions (default: whole cluster)")

    _add_session(command("get", sessions.get, "show one session"))

    sub = command("send", sessions.send, "type input into a session")
    _add_session(sub)
    _add_text(sub)

    sub = command("screen", sessions.screen, "print the visible screen")
    _add_session(sub)
    _add_styled(sub)

    sub = command("scrollback", sessions.scrollback, "print scrollback and screen lines")
    _add_session(sub)
    sub.add_argument("--offset", type=_uint64, default=0, help="first line (0 = oldest)")
    sub.add_argument("--limit", type=_uint32, default=0, help="lines (default: 100)")
    _add_styled(sub)

    sub = command(
        "idle",
        waiting.idle,
        "wait until a session goes quiet (idle), then print its screen",
        IDLE_EPILOG,
    )
    _add_session(sub)
    _add_idle_options(sub, full=True)

    sub = command(
        "race",
        waiting.race,
        "print the first session to go quiet (idle)",
        IDLE_EPILOG + "\nWith --all the stream ends, exit status 0, once nothing more goes idle\n"
        "within --max-wait-ms.\n",
    )
    _add_tags(sub, "sessions having any of these")
    _add_server_option(sub, "only this server's sessions (default: whole cluster)")
    _add_idle_options(sub, full=True)
    sub.add_argument(
        "--last-session", default="", help="skip it until it moves past --last-generation"
    )
    sub.add_argument("--last-server", default="", help="server of --last-session")
    sub.add_argument("--all", action="store_true", help="keep printing sessions as they settle")
    _add_count(
        sub, "--count", "N", "keep printing sessions as they settle until N different ones have"
    )

    sub = command(
        "run",
        waiting.run,
        "send input, wait until the session goes quiet, print the screen",
        IDLE_EPILOG + "\nOnly output after the input counts: the wait starts at its generation.\n",
    )
    _add_session(sub)
    _add_text(sub)
    _add_idle_options(sub, full=False)
    sub.add_argument(
        "--ready",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="wait until the foreground program waits for input again (--no-ready: for "
        "--quiet-ms of silence); default: --ready when it waits for input before the text "
        "is sent, as a shell at its prompt does",
    )

    sub = command(
        "watch",
        watching.watch,
        "print session and server events as they happen",
        "First the sessions and servers in scope (session, server), then `synced`,\n"
        "then one line per change: session-created, -renamed, -tags-changed,\n"
        "-resized, -exited, -killed, -expired, -removed, -busy, -idle; server-added,\n"
        "-removed, -health-changed. With --json, one JSON object per line. A watcher\n"
        "that falls behind gets the whole state again, marked (resync). Runs until\n"
        "interrupted (Ctrl-C).",
    )
    _add_tags(sub, "sessions having any of these")
    _add_server_option(sub, "only this server's sessions and events (default: whole cluster)")

    sub = command(
        "attach",
        attach.attach,
        "show a session live in this terminal and type into it",
        "The terminal goes to raw mode: every key goes to the session, the window\n"
        "size follows this terminal's (the last attacher to resize wins), until the\n"
        "detach key. Exit status: 0 once detached; the session's exit code once its\n"
        "process exits (128+N when killed by signal N); 128+N on signal N (SIGTERM,\n"
        "SIGHUP); otherwise those of `wsh --help`. The terminal is restored on every one.\n",
    )
    _add_session(sub)
    sub.add_argument(
        "--read-only", action="store_true", help="watch only: keys are not sent, size not changed"
    )
    sub.add_argument(
        "--detach-key",
        default=attach.DEFAULT_DETACH_KEY,
        metavar="KEY",
        help="ctrl-X or ^X, or none (default: ctrl-\\)",
    )

    _add_session(command("kill", sessions.kill, "end a session"))

    sub = command("rename", sessions.rename, "rename a session")
    _add_session(sub)
    sub.add_argument("new_name", metavar="NEW", help="new name")

    sub = command("tag", sessions.tag, "add or remove tags")
    _add_session(sub)
    sub.add_argument("--add", action="append", metavar="T", help="tag to add (repeatable)")
    sub.add_argument("--remove", action="append", metavar="T", help="tag to remove (repeatable)")

    sub = command("resize", sessions.resize, "change a session's size")
    _add_session(sub)
    sub.add_argument("rows", metavar="ROWS", type=_uint32, help="new height in lines")
    sub.add_argument("cols", metavar="COLS", type=_uint32, help="new width in columns")

    _add_servers(command("servers", servers.list_servers, "list and manage the cluster's servers"))
    command("info", servers.info, "show this server's identity")
    return parser


def _add_servers(parser: argparse.ArgumentParser) -> None:
    # The backend's own --token must not collide with the one for this server.
    nested = [_global_options(nested=True, token=False)]
    action = _Commands(parser, nested, "servers_command", "ACTION", required=False).add

    action("list", servers.list_servers, "list servers (the default)")
    sub = action("get", servers.get_server, "show one server")
    sub.add_argument("hostname", metavar="HOST", help="the server's hostname")
    sub = action(
        "add",
        servers.add_server,
        "register a backend and wait until it is healthy",
        "If it is not healthy in time it stays registered (and saved in the hub's\n"
        "config file), the hub keeps retrying, and the exit status is 7; a rejected\n"
        "backend (self loop, hostname taken) exits with 8. Either way\n"
        "`wsh servers remove ADDRESS` drops it.",
    )
    sub.add_argument("address", metavar="ADDRESS", help="http[s]://host:port[/prefix]")
    sub.add_argument("--token", dest="backend_token", help="the backend's bearer token")
    sub.add_argument("--no-wait", action="store_true", help="return at once (CONNECTING)")
    _add_count(
        sub,
        "--wait-timeout-ms",
        "MS",
        "how long to wait for it to be healthy (default: 10000; at most 120000)",
    )
    sub = action("remove", servers.remove_server, "deregister a backend")
    sub.add_argument(
        "host_or_address",
        metavar="HOST_OR_ADDRESS",
        help="hostname, or the address (always works, also while the hostname is unknown)",
    )
    action("reload", servers.reload_config, "reload backends from the config file")
