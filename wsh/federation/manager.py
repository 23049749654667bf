"""Cluster management: adding, removing and reloading backends, with config write-back.

Every way a backend comes in (the API, the config at start, a reload) goes
through the same address and ip_access checks here; the Link connection
repeats the ip_access check on each reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from wsh.config import DiscoveryEntry, ServerConfig, ServerEntry, reload_file
from wsh.errors import Kind, WshError
from wsh.federation import config as config_file
from wsh.federation.address import parse_backend_address
from wsh.federation.auth import check_bearer_token, resolve_token
from wsh.federation.config import AddEntry, Edit, RemoveEntry, SetHostname
from wsh.federation.discovery import DnsDiscovery
from wsh.federation.ip_access import IpAccess
from wsh.federation.link import BackendLink, TlsFiles
from wsh.federation.registry import Backend, Health, Registry
from wsh.identity import ServerIdentity
from wsh.text import printable

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 120.0


@dataclass(slots=True)
class ReloadResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _ConfigWriter:
    """Config write-back on a worker thread, one write at a time, coalesced:
    the edits that arrive while a write is under way go out together in the
    next one (one lock, one read, one atomic replace)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._pending: list[tuple[Edit, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, edit: Edit) -> asyncio.Future[bool]:
        """Queue ``edit``; the future tells whether it changed the file, or
        raises the write's WshError."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        if self.path is None:
            done.set_result(False)
            return done
        self._pending.append((edit, done))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(self.path), name="config-write-back")
        return done

    async def _drain(self, path: Path) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(
                    config_file.edit_servers, path, [edit for edit, _ in batch]
                )
            except WshError as err:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
                continue
            for (_, done), changed in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(changed)

    async def close(self) -> None:
        """Let queued edits reach the file."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


class Federation:
    """The backends of this hub and the config file that lists them.

    Of ``config`` it reads the file's path, the backends, ``default_token``,
    the backend TLS settings, ``[ip_access]`` and ``max_backends``; a reload
    reads them again (:func:`wsh.config.reload_file`).
    """

    def __init__(
        self, identity: ServerIdentity, config: ServerConfig, own_token: str | None
    ) -> None:
        self.identity = identity
        self.registry = Registry(identity.hostname)
        self._config = config
        self._own_token = own_token
        self._links: dict[Backend, BackendLink] = {}
        self._writer = _ConfigWriter(config.config_path)
        self._discoveries: list[DnsDiscovery] = []
        self._told_not_persisted = False

    @property
    def config_path(self) -> Path | None:
        """None when registrations live in memory only (no config file)."""
        return self._config.config_path

    def _ip_access(self) -> IpAccess:
        return self._config.ip_access or IpAccess()

    def _tls(self) -> TlsFiles:
        tls = self._config.backend_tls
        return TlsFiles(tls.ca_file, tls.client_cert, tls.client_key)

    def link(self, backend: Backend) -> BackendLink:
        return self._links[backend]

    def _resolve(self, token: str | None) -> str | None:
        return resolve_token(token, self._config.default_token, self._own_token)

    async def _admit(
        self, address: str, token: str | None, owned: str | None = None, discovered: str = ""
    ) -> Backend:
        """Check an address from any way in and start linking to it.

        ``owned`` is the hostname its config entry says it owns; ``discovered``
        the DNS name that found it.
        """
        parsed = parse_backend_address(address)
        existing = self.registry.by_address(parsed)
        if existing is not None:
            raise WshError(
                Kind.ALREADY_EXISTS,
                "SERVER_ALREADY_REGISTERED",
                f"Backend {parsed.url} is already registered"
                + (f" as {existing.hostname!r}" if existing.hostname else "")
                + (f", found in DNS by {existing.discovered!r}" if existing.discovered else "")
                + ".",
                {"address": parsed.url},
            )
        limit = self._config.max_backends
        if len(self.registry) >= limit:
            raise WshError(
                Kind.RESOURCE_EXHAUSTED,
                "TOO_MANY_BACKENDS",
                f"This hub has {len(self.registry)} backends registered, its limit; remove "
                "one first, or raise [server] max_backends in the config and reload "
                "(or restart with a higher --max-backends).",
                {"limit": str(limit)},
            )
        await self._ip_access().check_address(parsed)
        resolved = self._resolve(token)
        if resolved:
            check_bearer_token(resolved)
        backend = Backend(address=parsed, token=resolved, discovered=discovered)
        if owned:
            owner = self.registry.owner_of(owned)
            if owner is None:
                # Shown, and routed to (UNAVAILABLE), under its name until it links.
                backend.hostname = backend.owned = owned
            else:
                log.warning(
                    "config backends %s and %s both own hostname %r; the first keeps it",
                    owner.address.url,
                    parsed.url,
                    owned,
                )
        # Made first: unreadable TLS files must not leave a backend without a link.
        link = BackendLink(
            backend, self.registry, self.identity, self._ip_access, self._tls(), self._owned
        )
        self.registry.add(backend)
        self._links[backend] = link
        link.start()
        return backend

    async def start(self) -> None:
        """Link to every backend in the config file; bad entries are logged and skipped."""
        if self.config_path is None:
            log.info("no config file: backends added now are kept for this run only")
        else:
            log.info("config file: %s", self.config_path)
        for entry in self._config.servers:
            try:
                await self._admit(entry.address, entry.token, entry.hostname)
            except WshError as err:
                log.warning("config backend %s skipped: %s", printable(entry.address), err.message)
        self._discover(self._config.discovery)

    def _discover(self, entries: tuple[DiscoveryEntry, ...]) -> None:
        """Start resolving ``entries``; each adopts the backends found by its name."""
        for entry in entries:
            discovery = DnsDiscovery(
                entry, self._admit_discovered, self._drop_discovered, self._registered
            )
            discovery.mine = {b.address.url for b in self.registry if b.discovered == entry.name}
            self._discoveries.append(discovery)
            discovery.start()
            log.info(
                "discovering backends in DNS: %s %s every %.0f s",
                "SRV" if entry.srv else "A/AAAA",
                entry.name,
                entry.interval_s,
            )

    def _registered(self, url: str) -> bool:
        return self.registry.by_address(parse_backend_address(url)) is not None

    async def _admit_discovered(self, url: str, entry: DiscoveryEntry) -> None:
        await self._admit(url, entry.token, discovered=entry.name)

    async def _drop_discovered(self, url: str) -> None:
        backend = self.registry.by_address(parse_backend_address(url))
        if backend is not None and backend.discovered:
            await self._drop(backend)

    def _owned(self, backend: Backend) -> None:
        """A backend linked for the first time: its name is recorded as its own
        (in the config file unless DNS found it: that is never written)."""
        log.info("backend %s owns hostname %s", backend.address.url, backend.owned)
        if backend.discovered:
            return
        written = self._writer.submit(SetHostname(backend.address.url, backend.owned))
        written.add_done_callback(_log_write_failure)

    async def add_server(
        self, address: str, token: str | None, *, wait: bool, wait_timeout_s: float
    ) -> Backend:
        """Register a backend, write it to the config file, optionally wait for it.

        A backend that, waited for, turns out REJECTED (a self-loop, a taken
        hostname) is not written: it would only be rejected again at every start.
        """
        backend = await self._admit(address, token)
        if wait:
            await self._wait_settled(backend, wait_timeout_s or DEFAULT_WAIT_S)
            if backend.health is Health.REJECTED:
                return backend
        if self.config_path is None and not self._told_not_persisted:
            self._told_not_persisted = True
            log.warning(
                "backends added to this server are not saved: it has no config file "
                "(it listens on a random port); start it with --config FILE to keep them"
            )
        try:
            await self._writer.submit(AddEntry(backend.address.url, token, backend.owned or None))
        except WshError:
            await self._drop(backend)
            raise
        return backend

    async def _wait_settled(self, backend: Backend, timeout_s: float) -> None:
        changes = self.registry.changes
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout_s, MAX_WAIT_S)):
                seen = changes.version
                while backend.health in (Health.CONNECTING, Health.UNAVAILABLE):
                    seen = await changes.wait(seen)

    async def remove_server(self, hostname: str, address: str) -> Backend:
        """Unlink a backend and drop it from the config file; its sessions live on there."""
        if hostname and hostname == self.identity.hostname and not address:
            raise WshError(
                Kind.FAILED_PRECONDITION,
                "CANNOT_REMOVE_SELF",
                "This server cannot remove itself from its own cluster.",
            )
        backend = self.registry.find(hostname, address)
        if backend.discovered:
            raise WshError(
                Kind.FAILED_PRECONDITION,
                "SERVER_DISCOVERED",
                f"Backend {backend.address.url} was found in DNS by {backend.discovered!r} and "
                "would come back at the next lookup: remove it from DNS (it goes after the "
                "grace period) or the [[discovery]] entry from the config, then reload.",
                {"address": backend.address.url, "discovery": backend.discovered},
            )
        await self._drop(backend)
        await self._writer.submit(RemoveEntry(backend.address.url))
        return backend

    async def _drop(self, backend: Backend) -> None:
        self.registry.remove(backend)
        link = self._links.pop(backend, None)
        if link is not None:
            await link.close()

    async def reload(self) -> ReloadResult:
        """Make the registry match the config file: add, remove, update tokens
        (and the TLS settings of https backends)."""
        if self.config_path is None:
            return ReloadResult(warnings=["this server has no config file to reload"])
        fresh = await asyncio.to_thread(reload_file, self._config)
        tls_changed = fresh.backend_tls != self._config.backend_tls
        self._config = fresh
        result = ReloadResult(warnings=list(fresh.warnings))
        await self._rediscover(fresh.discovery)
        # Discovered backends are not the file's [[servers]]: left out of the diff.
        running = {b.address.url: b.token for b in self.registry if not b.discovered}
        wanted = [
            ServerEntry(address=e.address, token=self._resolve(e.token)) for e in fresh.servers
        ]
        # The first entry for a backend wins, as in diff_servers.
        own_tokens: dict[str, str | None] = {}
        owned: dict[str, str | None] = {}
        for entry in fresh.servers:
            if _valid(entry.address):
                url = parse_backend_address(entry.address).url
                own_tokens.setdefault(url, entry.token)
                owned.setdefault(url, entry.hostname)
        self._reown(owned, result)
        diff = config_file.diff_servers(running, wanted)
        if tls_changed:
            # New trust roots or client certificate: https backends link afresh.
            pending = {e.address for e in diff.updated} | set(diff.removed)
            diff.updated.extend(
                ServerEntry(address=b.address.url)
                for b in self.registry
                if b.address.tls and b.address.url not in pending
            )
        result.warnings += [message for _address, message in diff.invalid]
        for url in diff.removed:
            await self._drop(self.registry.find(address=url))
            result.removed.append(url)
        await self._recheck_ip_access({e.address for e in diff.updated}, result)
        for entry in diff.updated:
            await self._drop(self.registry.find(address=entry.address))
        for entries, done in ((diff.updated, result.updated), (diff.added, result.added)):
            for entry in entries:
                try:
                    await self._admit(
                        entry.address, own_tokens.get(entry.address), owned.get(entry.address)
                    )
                except WshError as err:
                    result.warnings.append(f"{entry.address}: {err.message}")
                    continue
                done.append(entry.address)
        return result

    async def _rediscover(self, entries: tuple[DiscoveryEntry, ...]) -> None:
        """Apply a reloaded ``[[discovery]]``: entries kept go on with their
        backends; a removed entry's backends are unlinked."""
        if tuple(d.entry for d in self._discoveries) == entries:
            return
        for discovery in self._discoveries:
            await discovery.close()
        self._discoveries.clear()
        names = {entry.name for entry in entries}
        for backend in self.registry:
            if backend.discovered and backend.discovered not in names:
                await self._drop(backend)
        self._discover(entries)

    def _reown(self, owned: dict[str, str | None], result: ReloadResult) -> None:
        """Apply hostnames the operator set in the file to running backends:
        how a backend's rename is accepted (its link asks again shortly)."""
        for backend in self.registry:
            name = owned.get(backend.address.url)
            if not name or name == backend.owned:
                continue
            owner = self.registry.owner_of(name)
            if owner is not None:
                result.warnings.append(
                    f"{backend.address.url}: hostname {name!r} is owned by {owner.address.url}"
                )
                continue
            log.info("backend %s now owns hostname %s", backend.address.url, name)
            backend.owned = name

    async def _recheck_ip_access(self, skip: set[str], result: ReloadResult) -> None:
        """Apply a changed ``[ip_access]`` to the backends kept by a reload.

        A backend the rules now refuse is dropped, as it would have been
        skipped at start (its sessions live on there); the reload that allows
        it again adds it back. A name that does not resolve right now is left
        to its link, which retries.
        """
        for backend in self.registry:
            if backend.address.url in skip:
                continue
            try:
                await self._ip_access().check_address(backend.address)
            except WshError as err:
                if err.reason != "IP_NOT_ALLOWED":
                    continue
                await self._drop(backend)
                log.warning("backend %s dropped: %s", backend.address.url, err.message)
                result.warnings.append(f"{backend.address.url}: {err.message}")

    async def close(self) -> None:
        for discovery in self._discoveries:
            await discovery.close()
        links = list(self._links.values())
        self._links.clear()
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
        await self._writer.close()


def _log_write_failure(written: asyncio.Future[bool]) -> None:
    if not written.cancelled() and written.exception() is not None:
        err = written.exception()
        log.warning("config write-back failed: %s", getattr(err, "message", err))


def _valid(address: str) -> bool:
    try:
        parse_backend_address(address)
    except WshError:
        return False
    return True
