"""DNS for guarded fetches: resolve once, check every answer, connect to what was checked.

:class:`GuardedResolver` is the aiohttp resolver of a guarded session. The connector
connects to exactly the addresses it returns (TLS still verifies the hostname), and it
returns them only if the guard accepts every one, so a name cannot be re-pointed at a
private address between the check and the connect (DNS rebinding). The session must not
cache DNS (``use_dns_cache=False``): each connection is one lookup, one check.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from switchyard.fetch.errors import DnsFailure
from switchyard.fetch.guard import AddressGuard


class GuardedResolver(AbstractResolver):
    """Answers of ``inner`` (the system resolver by default), each checked by ``guard``."""

    def __init__(self, guard: AddressGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            answers = await self._inner.resolve(host, port, family)
        except OSError as exc:
            raise DnsFailure(f"cannot resolve {host}: {exc}") from exc
        if not answers:
            raise DnsFailure(f"no address for {host}")
        for answer in answers:
            self._guard.check_address(answer["host"], url=host)
        return answers

    async def close(self) -> None:
        await self._inner.close()
