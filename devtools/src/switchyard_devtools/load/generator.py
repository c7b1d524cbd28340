"""An asyncio HTTP load generator: bounded concurrency, a progress bar, latency percentiles.

One Python thread per request could not push a server hard enough to measure it; one
event loop with a connection pool can (several thousand requests/s per core).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tqdm import tqdm


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    events: int = 1  # events the request carries, for events/s


@dataclass
class LoadResult:
    started: float
    finished: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    events_accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    bodies: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return max(1e-9, self.finished - self.started)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.elapsed, 3),
            "requests_per_s": round(self.requests / self.elapsed, 1),
            "events_per_s": round(self.events_accepted / self.elapsed, 1),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p95_ms": round(self.percentile(95) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "statuses": dict(sorted(self.statuses.items())),
            "errors": dict(self.errors),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


async def _run(
    requests: Iterable[Request],
    concurrency: int,
    total: int | None,
    keep_bodies: bool,
    accepted: Callable[[int], bool],
    label: str,
    show_progress: bool,
) -> LoadResult:
    result = LoadResult(started=time.perf_counter())
    iterator = iter(requests)
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300
    )
    timeout = aiohttp.ClientTimeout(total=60)
    bar = tqdm(total=total, desc=label, unit="req", disable=not show_progress, smoothing=0.1)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for request in iterator:
                started = time.perf_counter()
                try:
                    async with session.request(
                        request.method,
                        request.url,
                        data=request.body,
                        headers=dict(request.headers),
                    ) as response:
                        body = await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    result.errors[type(exc).__name__] += 1
                    status, body = 0, b""
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] += 1
                if accepted(status):
                    result.events_accepted += request.events
                if keep_bodies:
                    result.bodies.append((status, body))
                bar.update(1)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    bar.close()
    result.finished = time.perf_counter()
    return result


def run_load(
    requests: Iterable[Request],
    concurrency: int,
    *,
    total: int | None = None,
    keep_bodies: bool = False,
    accepted: Callable[[int], bool] = lambda s: s < 300,
    label: str = "load",
    show_progress: bool = True,
) -> LoadResult:
    """Send ``requests`` with ``concurrency`` in flight; returns what happened."""
    return asyncio.run(
        _run(requests, concurrency, total, keep_bodies, accepted, label, show_progress)
    )
