"""The config file's ``[[servers]]`` list: edit it in place, diff it.

The file is the source of truth for the backend list: backends added or
removed at runtime are written back with :func:`add_server` and
:func:`remove_server`, and a reload compares the file with the running
registry through :func:`diff_servers`. Editing goes through ``tomlkit`` so the
comments and the other settings survive a write. Reading the file (the
backends and everything else) is :mod:`wsh.config`'s.

All functions here block (file I/O, ``flock``); call them from asyncio code
with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from wsh.config import ServerEntry, check_document, config_error, parse_toml
from wsh.errors import Kind, WshError
from wsh.federation.address import parse_backend_address
from wsh.text import quote


@dataclass(frozen=True, slots=True)
class AddEntry:
    """Append a ``[[servers]]`` entry (unless one for the backend is there)."""

    address: str
    token: str | None = field(default=None, repr=False)
    hostname: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveEntry:
    """Remove every ``[[servers]]`` entry for the backend."""

    address: str


@dataclass(frozen=True, slots=True)
class SetHostname:
    """Record the hostname a backend owns in its ``[[servers]]`` entries."""

    address: str
    hostname: str


Edit = AddEntry | RemoveEntry | SetHostname

# The document as this process last wrote it, by real path, with the file's
# identity then: parsing is most of the cost of an edit (tomlkit took 25 ms
# of 30 for a file of 250 backends), and a file nobody else touched since
# need not be parsed again. A stat that differs means someone edited it.
_written: dict[str, tuple[tuple[int, int, int, int], TOMLDocument]] = {}


def _file_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Lock the config against other writers.

    The lock is on a side file because the config itself is replaced on every
    write, and a lock on a replaced inode guards nothing. It serialises
    writers in this process (calls arrive on worker threads) and in others.
    """
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = os.open(target.parent / f".{target.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock_fd)


def _read_document(target: Path) -> TOMLDocument:
    """The file's document, from ``_written`` when the file is as we left it.
    Call with the lock held."""
    try:
        with open(target, "rb") as file:
            key = _file_key(os.fstat(file.fileno()))
            cached = _written.get(str(target))
            if cached is not None and cached[0] == key:
                return cached[1]
            data = file.read()
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as exc:
        raise config_error(target, f"cannot read it: {exc.strerror or exc}") from None
    document = parse_toml(target, data)
    # Refuse to edit a file the server could not load.
    check_document(target, document)
    return document


def _write_error(path: Path, exc: OSError) -> WshError:
    return WshError(
        Kind.FAILED_PRECONDITION,
        "CONFIG_WRITE_FAILED",
        f"Cannot write config file {path}: {exc.strerror or exc}.",
        {"path": str(path)},
    )


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file,
    never a partial one, even across a crash."""
    try:
        # mkstemp creates the file with mode 0600: tokens are never exposed,
        # not even for the moment before a chmod.
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # makes the rename itself durable
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise _write_error(path, exc) from None


@functools.lru_cache(maxsize=4096)
def _canonical(address: str) -> str:
    """The canonical URL of a valid address, or the stripped text of an invalid
    one (so a bad entry can still be found and removed)."""
    try:
        return parse_backend_address(address).url
    except WshError:
        return address.strip()


def _entries_for(servers: Array | AoT, url: str) -> list[int]:
    return [
        index
        for index, entry in enumerate(servers)
        if _canonical(str(entry.get("address", ""))) == url
    ]


def _apply(document: TOMLDocument, edit: Edit) -> bool:
    servers = document.get("servers")
    if isinstance(edit, AddEntry):
        url = parse_backend_address(edit.address).url
        if servers is not None and _entries_for(servers, url):
            return False
        # A file using the inline form "servers = [{...}]" keeps to it.
        entry: Table | InlineTable = (
            tomlkit.inline_table() if isinstance(servers, Array) else tomlkit.table()
        )
        entry["address"] = url
        if edit.token:
            entry["token"] = edit.token
        if edit.hostname:
            entry["hostname"] = edit.hostname
        if isinstance(servers, Array | AoT):
            servers.append(entry)
        else:
            document["servers"] = tomlkit.aot()
            document["servers"].append(entry)
        return True
    if servers is None:
        return False
    doomed = _entries_for(servers, _canonical(edit.address))
    if isinstance(edit, SetHostname):
        changed = False
        for index in doomed:
            if servers[index].get("hostname") != edit.hostname:
                servers[index]["hostname"] = edit.hostname
                changed = True
        return changed
    for index in reversed(doomed):
        del servers[index]
    if not servers:
        # tomlkit would leave "servers = []" at the top of the file.
        del document["servers"]
    return bool(doomed)


def edit_servers(path: Path, edits: Sequence[Edit]) -> list[bool]:
    """Apply ``edits`` to the config's ``[[servers]]`` in order, under one lock,
    with one read and at most one write; returns, for each edit, whether it
    changed anything.

    The file and its directory are created for an :class:`AddEntry` only.
    Raises ``ADDRESS_INVALID`` for an AddEntry with a bad address (nothing is
    written then), ``CONFIG_INVALID`` when the existing file is broken (it is
    never overwritten then) and ``CONFIG_WRITE_FAILED`` when writing fails.
    """
    for edit in edits:
        if isinstance(edit, AddEntry):
            parse_backend_address(edit.address)
    # Write through a symlink rather than replacing it (dotfile managers
    # link config files into place).
    target = Path(os.path.realpath(path))
    if not target.exists() and not any(isinstance(e, AddEntry) for e in edits):
        return [False] * len(edits)
    with _locked(target):
        document = _read_document(target)
        try:
            results = [_apply(document, edit) for edit in edits]
            if any(results):
                _write_atomically(target, document.as_string())
                _written[str(target)] = (_file_key(os.stat(target)), document)
        except BaseException:
            # The document may be half edited: read the file afresh next time.
            _written.pop(str(target), None)
            raise
        return results


def add_server(
    path: Path, address: str, token: str | None = None, hostname: str | None = None
) -> bool:
    """Append a ``[[servers]]`` entry for ``address`` (canonical form) to the
    config file, creating the file and its directory if needed.

    Returns False, leaving the file untouched, when an entry for the same
    backend is already there. Raises like :func:`edit_servers`.
    """
    return edit_servers(path, [AddEntry(address, token, hostname)])[0]


def remove_server(path: Path, address: str) -> bool:
    """Remove every ``[[servers]]`` entry for ``address`` (compared in canonical
    form) from the config file. Returns False when there was none (or no
    file). Raises like :func:`edit_servers`."""
    return edit_servers(path, [RemoveEntry(address)])[0]


@dataclass(frozen=True, slots=True)
class ServerDiff:
    """What a reload must do to make the running registry match the file.

    ``added`` and ``updated`` carry canonical addresses; ``removed`` carries
    the running registry's keys as given; ``invalid`` lists the wanted entries
    that were skipped, as ``(address, message)``.
    """

    added: list[ServerEntry]
    removed: list[str]
    updated: list[ServerEntry]
    invalid: list[tuple[str, str]]


def diff_servers(running: dict[str, str | None], wanted: list[ServerEntry]) -> ServerDiff:
    """Compare the running registry (address -> token) with the config's entries.

    Addresses are compared in canonical form, so ``http://h`` and
    ``http://h:80/`` are one backend. Tokens are compared as given: pass the
    same kind on both sides (for instance both resolved through the token
    cascade). Wanted entries with an invalid address, or repeating an earlier
    entry's backend, go to ``invalid`` and count as neither wanted nor removed.
    """
    running_by_url = {_canonical(address): (address, token) for address, token in running.items()}
    wanted_by_url: dict[str, ServerEntry] = {}
    first_spelling: dict[str, str] = {}
    invalid: list[tuple[str, str]] = []
    for entry in wanted:
        try:
            url = parse_backend_address(entry.address).url
        except WshError as exc:
            invalid.append((entry.address, exc.message))
            continue
        if url in wanted_by_url:
            invalid.append(
                (
                    entry.address,
                    f"Backend address {quote(entry.address)} repeats "
                    f"{quote(first_spelling[url])}; the first entry is used.",
                )
            )
            continue
        wanted_by_url[url] = ServerEntry(address=url, token=entry.token)
        first_spelling[url] = entry.address
    return ServerDiff(
        added=[e for url, e in wanted_by_url.items() if url not in running_by_url],
        removed=[
            address for url, (address, _token) in running_by_url.items() if url not in wanted_by_url
        ],
        updated=[
            e
            for url, e in wanted_by_url.items()
            if url in running_by_url and running_by_url[url][1] != e.token
        ],
        invalid=invalid,
    )
