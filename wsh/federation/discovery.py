"""Backends found in DNS (``[[discovery]]``, ``--discover``).

Each entry's name is resolved every ``interval`` seconds, sooner when the
records' TTL says so (never more often than each ``MIN_RESOLVE_S``): A and
AAAA records give addresses at the entry's port, SRV records their targets'
addresses at the records' ports. Each address new to the hub is admitted
like any backend (address and ip_access checks, the token cascade,
``max_backends``) but never written to ``[[servers]]``; one gone from DNS for
``grace`` seconds is unlinked (its sessions keep running there). A failed
lookup (timeout, SERVFAIL) changes nothing; an answer that the name does not
exist or has no such records counts as no address.

Discovery never fights a manual registration: an address already
registered by hand stays the operator's (discovery neither admits nor
removes it), and a discovered backend cannot be removed by hand (it would
come back at the next lookup; change DNS or the config instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable

import dns.asyncresolver
import dns.exception
import dns.resolver

from wsh.config import DiscoveryEntry, parse_nameserver
from wsh.errors import WshError
from wsh.federation.address import parse_backend_address

log = logging.getLogger(__name__)

# However short the records' TTL (Kubernetes answers with 5 to 30 s, dnsmasq
# with 0 by default), a name is not asked more often than this.
MIN_RESOLVE_S = 1.0
# One lookup (all its tries) may take this long.
LOOKUP_TIMEOUT_S = 5.0


class LookupFailed(Exception):
    """DNS did not answer (as opposed to answering that there is nothing)."""


Admit = Callable[[str, DiscoveryEntry], Awaitable[None]]
Drop = Callable[[str], Awaitable[None]]


class DnsDiscovery:
    """Keeps the hub's backends in step with one DNS name's records."""

    def __init__(
        self, entry: DiscoveryEntry, admit: Admit, drop: Drop, registered: Callable[[str], bool]
    ) -> None:
        """``admit(url, entry)`` registers an address (raises WshError when it
        cannot: already registered, refused); ``drop(url)`` unlinks one;
        ``registered(url)`` says whether it is still registered (a reload
        that changed [ip_access] may have dropped it)."""
        self.entry = entry
        self._registered = registered
        self._admit = admit
        self._drop = drop
        self._resolver = dns.asyncresolver.Resolver(configure=entry.nameserver is None)
        if entry.nameserver is not None:
            host, port = parse_nameserver(entry.nameserver)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        self._resolver.lifetime = LOOKUP_TIMEOUT_S
        # Addresses this discovery registered, and since when each is missing.
        self.mine: set[str] = set()
        self._missing: dict[str, float] = {}
        # What was last logged about an address it could not admit, and
        # about the lookup: each said once until it changes.
        self._refused: dict[str, str] = {}
        self._lookup_error = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # A context of its own: a reload call starts it, and it outlives the call.
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"discovery-{self.entry.name}", context=contextvars.Context()
        )

    async def close(self) -> None:
        """Stop resolving; the backends found so far stay registered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            delay = self.entry.interval_s
            try:
                found, ttl = await self.lookup()
            except LookupFailed as exc:
                if str(exc) != self._lookup_error:
                    log.warning("discovery %s: lookup failed: %s", self.entry.name, exc)
                self._lookup_error = str(exc)
            else:
                if self._lookup_error:
                    log.info("discovery %s: lookups answered again", self.entry.name)
                self._lookup_error = ""
                await self.reconcile(found)
                if ttl is not None:
                    delay = min(delay, ttl)
            delay = min(delay, *self._grace_ends(), self.entry.interval_s)
            await asyncio.sleep(max(MIN_RESOLVE_S, delay))

    def _grace_ends(self) -> list[float]:
        """Seconds until each missing address's grace ends."""
        now = time.monotonic()
        return [since + self.entry.grace_s - now for since in self._missing.values()]

    async def reconcile(self, found: set[str]) -> None:
        """Admit the addresses new in ``found``; drop those missing for the grace."""
        now = time.monotonic()
        for url in sorted(found):
            self._missing.pop(url, None)
            if url in self.mine and self._registered(url):
                continue
            try:
                await self._admit(url, self.entry)
            except WshError as err:
                if self._refused.get(url) != err.reason:
                    self._refused[url] = err.reason
                    log.info("discovery %s: %s not added: %s", self.entry.name, url, err.message)
                continue
            self._refused.pop(url, None)
            self.mine.add(url)
            log.info("discovery %s: added backend %s", self.entry.name, url)
        for url in [u for u in self._refused if u not in found]:
            del self._refused[url]
        for url in sorted(self.mine - found):
            since = self._missing.setdefault(url, now)
            if now - since < self.entry.grace_s:
                continue
            del self._missing[url]
            self.mine.discard(url)
            await self._drop(url)
            log.info(
                "discovery %s: removed backend %s, gone from DNS for %.0f s",
                self.entry.name,
                url,
                now - since,
            )

    async def lookup(self) -> tuple[set[str], float | None]:
        """The backend URLs the name stands for now, and the shortest TTL of
        the records read (None when there were none)."""
        entry = self.entry
        if entry.srv:
            answer = await self._query(entry.name, "SRV")
            if answer is None:
                return set(), None
            ttl = float(answer.rrset.ttl) if answer.rrset is not None else None
            urls: set[str] = set()
            for record in answer:
                target = record.target.to_text(omit_final_dot=True)
                addresses, target_ttl = await self._addresses(target)
                if target_ttl is not None:
                    ttl = target_ttl if ttl is None else min(ttl, target_ttl)
                urls.update(_url(entry.scheme, address, record.port) for address in addresses)
            return urls, ttl
        addresses, ttl = await self._addresses(entry.name)
        return {_url(entry.scheme, address, entry.port) for address in addresses}, ttl

    async def _addresses(self, name: str) -> tuple[set[str], float | None]:
        addresses: set[str] = set()
        ttl: float | None = None
        for rdtype in ("A", "AAAA"):
            answer = await self._query(name, rdtype)
            if answer is None:
                continue
            if answer.rrset is not None:
                ttl = float(answer.rrset.ttl) if ttl is None else min(ttl, answer.rrset.ttl)
            addresses.update(record.address for record in answer)
        return addresses, ttl

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        """The answer, or None when DNS says there is none; LookupFailed when
        it does not say."""
        try:
            return await self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{rdtype} {name}: {exc}") from None


def _url(scheme: str, address: str, port: int) -> str:
    """The canonical URL of a backend at ``address`` (as the registry keys it)."""
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return parse_backend_address(f"{scheme}://{host}:{port}").url
