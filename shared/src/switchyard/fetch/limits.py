"""Bounded concurrency: at most N fetches in flight in all, and at most M per host.

A fetch takes its host's slot first and only then a global one, so fetches queued
behind one slow host wait without holding global slots: a slow supplier cannot starve
the others. Per-host semaphores are dropped when no fetch uses them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ConcurrencyLimits:
    def __init__(self, total: int, per_host: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_host = per_host
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one slot for ``host`` (and one global slot) while the block runs."""
        semaphore, users = self._hosts.get(host, (asyncio.Semaphore(self._per_host), 0))
        self._hosts[host] = (semaphore, users + 1)
        try:
            async with semaphore, self._total:
                yield
        finally:
            semaphore, users = self._hosts[host]
            if users == 1:
                del self._hosts[host]
            else:
                self._hosts[host] = (semaphore, users - 1)

    def hosts_in_use(self) -> int:
        return len(self._hosts)
