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

from wsh.errors import Kind, WshError
from wsh.federation import config as config_file
from wsh.federation.address import parse_backend_address
from wsh.federation.auth import check_bearer_token, resolve_token
from wsh.federation.config import Config, ServerEntry
from wsh.federation.ip_access import IpAccess
from wsh.federation.link import BackendLink, TlsFiles
from wsh.federation.registry import Backend, Health, Registry
from wsh.identity import ServerIdentity

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 120.0


@dataclass(slots=True)
class ReloadResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Federation:
    """The backends of this hub and the config file that lists them."""

    def __init__(self, identity: ServerIdentity, config: Config, own_token: str | None) -> None:
        self.identity = identity
        self.registry = Registry(identity.hostname)
        self._config = config
        self._own_token = own_token
        self._links: dict[Backend, BackendLink] = {}

    @property
    def config_path(self) -> Path:
        return self._config.path

    def _ip_access(self) -> IpAccess:
        return self._config.ip_access or IpAccess()

    def _tls(self) -> TlsFiles:
        tls = self._config.tls
        return TlsFiles(tls.ca_file, tls.client_cert, tls.client_key)

    def link(self, backend: Backend) -> BackendLink:
        return self._links[backend]

    def _resolve(self, token: str | None) -> str | None:
        return resolve_token(token, self._config.default_token, self._own_token)

    async def _admit(self, address: str, token: str | None) -> Backend:
        """Check an address from any way in and start linking to it."""
        parsed = parse_backend_address(address)
        existing = self.registry.by_address(parsed)
        if existing is not None:
            raise WshError(
                Kind.ALREADY_EXISTS,
                "SERVER_ALREADY_REGISTERED",
                f"Backend {parsed.url} is already registered"
                + (f" as {existing.hostname!r}" if existing.hostname else "")
                + ".",
                {"address": parsed.url},
            )
        await self._ip_access().check_address(parsed)
        resolved = self._resolve(token)
        if resolved:
            check_bearer_token(resolved)
        backend = Backend(address=parsed, token=resolved)
        # Made first: unreadable TLS files must not leave a backend without a link.
        link = BackendLink(backend, self.registry, self.identity, self._ip_access, self._tls())
        self.registry.add(backend)
        self._links[backend] = link
        link.start()
        return backend

    async def start(self) -> None:
        """Link to every backend in the config file; bad entries are logged and skipped."""
        for warning in self._config.warnings:
            log.warning("%s", warning)
        for entry in self._config.servers:
            try:
                await self._admit(entry.address, entry.token)
            except WshError as err:
                log.warning("config backend %s skipped: %s", entry.address, err.message)

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
        try:
            await asyncio.to_thread(
                config_file.add_server, self.config_path, backend.address.url, token
            )
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
        await self._drop(backend)
        await asyncio.to_thread(config_file.remove_server, self.config_path, backend.address.url)
        return backend

    async def _drop(self, backend: Backend) -> None:
        self.registry.remove(backend)
        link = self._links.pop(backend, None)
        if link is not None:
            await link.close()

    async def reload(self) -> ReloadResult:
        """Make the registry match the config file: add, remove, update tokens
        (and the TLS settings of https backends)."""
        fresh = await asyncio.to_thread(config_file.load_config, self.config_path)
        tls_changed = fresh.tls != self._config.tls
        self._config = fresh
        result = ReloadResult(warnings=list(fresh.warnings))
        running = {b.address.url: b.token for b in self.registry}
        wanted = [
            ServerEntry(address=e.address, token=self._resolve(e.token)) for e in fresh.servers
        ]
        # The first entry for a backend wins, as in diff_servers.
        own_tokens: dict[str, str | None] = {}
        for entry in fresh.servers:
            if _valid(entry.address):
                own_tokens.setdefault(parse_backend_address(entry.address).url, entry.token)
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
            try:
                await self._admit(entry.address, own_tokens.get(entry.address))
            except WshError as err:
                result.warnings.append(f"{entry.address}: {err.message}")
                continue
            result.updated.append(entry.address)
        for entry in diff.added:
            try:
                await self._admit(entry.address, own_tokens.get(entry.address))
            except WshError as err:
                result.warnings.append(f"{entry.address}: {err.message}")
                continue
            result.added.append(entry.address)
        return result

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
        links = list(self._links.values())
        self._links.clear()
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)


def _valid(address: str) -> bool:
    try:
        parse_backend_address(address)
    except WshError:
        return False
    return True
