"""Runs every target at its interval, spread out, on one event loop, never in a burst.

Guarantees of :class:`Scheduler`:

- Each target fires on its own grid: ``(k + phase) * interval`` seconds of wall-clock
  time, ``phase`` a fixed fraction taken from its id (Fibonacci hashing, so consecutive
  ids spread evenly). Thousands of targets never fire in the same millisecond, and a
  replica taking a target over keeps its cadence.
- At most one probe per target is in flight or being delivered. A firing that finds the
  previous one still running is skipped (``health_probes_skipped_total``), so a slow
  target or a slow sink can never pile probes up.
- No backlog: a firing handled late probes once, and the next one is the first slot at
  least half an interval after the moment it was handled; a target is never probed
  twice within half an interval, whatever the loop went through. That holds for the
  probes' starts, not only the firings: a probe that waited for a slot until less than
  half an interval before the next one would start is skipped
  (``health_probes_skipped_total``). Without that, on a loaded machine a probe that
  waited seconds for a slot and the next one on time ran 0.7 s apart.
- :meth:`upsert` and :meth:`remove` act at once: a removed or changed target's probe in
  flight is cancelled and its result, if it still arrives, dropped; a changed interval
  moves the target to its new grid (no sooner than half a new interval after its last
  probe); a new target fires at its first slot from now (within one interval; not at
  once, so loading ten thousand targets is no stampede).
- At most ``max_in_flight`` probes at once, ``max_per_host`` per host (host slot first,
  so a slow host cannot hold global slots, as in :mod:`switchyard.fetch.limits`); waiters
  are served first come, first served, and taking or handing over a slot costs the same
  however many probes wait (counters and FIFO queues, not ``asyncio.Semaphore``, whose
  ``locked()`` walks every waiter on Python 3.11: a backlog on a loaded machine made
  each probe dearer and the backlog longer).
- Lag = start (slots held) - scheduled time, recorded for every probe.
- Results reach ``sink`` one at a time per target, in order; a failing sink is logged
  and does not stop the schedule.
- ``health_probes_total`` and ``health_probes_in_flight`` are at most
  ``METRICS_FLUSH_SECONDS`` behind (counted in plain ints per probe, handed to
  prometheus_client, whose every call takes a lock, twice a second and on close); the lag
  and latency histograms are observed per probe.

One heap and one timer handle, not one sleeping task per target: the loop's own timer
heap stays at one entry, and a probe becomes a task only for the time it runs.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from switchyard import metrics
from switchyard.logging import get_logger
from switchyard_health_checker.targets import ProbeResult, Target

log = get_logger(__name__)

ProbeFn = Callable[[Target], Awaitable[ProbeResult]]
Sink = Callable[[Target, ProbeResult], Awaitable[None]]
_GOLDEN = 0x9E3779B97F4A7C15
METRICS_FLUSH_SECONDS = 0.5


def phase_of(target_id: int) -> float:
    """The fixed fraction of its interval at which a target fires, in [0, 1)."""
    return ((target_id * _GOLDEN) & 0xFFFF_FFFF_FFFF_FFFF) / 2.0**64


@dataclass(frozen=True)
class Limits:
    max_in_flight: int = 1_000
    max_per_host: int = 100


class _Entry:
    __slots__ = (
        "delivering",
        "generation",
        "last_fired",
        "last_started",
        "phase",
        "target",
        "task",
    )

    def __init__(self, target: Target) -> None:
        self.target = target
        self.phase = phase_of(target.id)
        self.generation = 0  # bumped when its heap item goes stale
        self.last_fired: float | None = None
        self.last_started = -math.inf  # when its last probe got its slots and began
        self.task: asyncio.Task[None] | None = None
        self.delivering = False


class Scheduler:
    """``async with Scheduler(probe, sink) as scheduler: scheduler.upsert(target)``."""

    def __init__(
        self,
        probe: ProbeFn,
        sink: Sink,
        limits: Limits | None = None,
        *,
        lag_observer: Callable[[Target, float], None] | None = None,
    ) -> None:
        self._probe = probe
        self._sink = sink
        self.limits = limits if limits is not None else Limits()
        self._in_flight = 0  # global slots held
        self._host_held: dict[str, int] = {}  # host slots held, hosts in use only
        self._host_waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._global_waiters: deque[asyncio.Future[None]] = deque()  # each holds a host slot
        self._lag_observer = lag_observer
        self._entries: dict[int, _Entry] = {}
        self._heap: list[tuple[float, int, int]] = []  # (due, target id, generation)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._epoch = 0.0  # wall-clock time minus loop time
        self._tasks: set[asyncio.Task[None]] = set()  # cancelled ones too, until they end
        self._counters: dict[str, Any] = {}  # health_probes_total's child per reason
        self._finished: dict[str, int] = {}  # probes finished per reason, not yet flushed
        self._flusher: asyncio.TimerHandle | None = None
        self._kinds = {k: metrics.health_probe_latency_seconds.labels(k) for k in ("http", "tcp")}

    async def __aenter__(self) -> Scheduler:
        self._loop = asyncio.get_running_loop()
        self._epoch = time.time() - self._loop.time()
        self._arm()
        self._flush_metrics()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self, grace_seconds: float = 0.0) -> None:
        """Stop firing; give probes in flight ``grace_seconds`` to finish, cancel the rest."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
        self._timer, self._timer_at, self._heap = None, math.inf, []
        tasks = list(self._tasks)
        if tasks and grace_seconds > 0:
            await asyncio.wait(tasks, timeout=grace_seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._entries.clear()
        self._flush_metrics()
        metrics.health_targets_scheduled.set(0)

    # -- the set of targets ---------------------------------------------------------
    def upsert(self, target: Target) -> None:
        entry = self._entries.get(target.id)
        if entry is None:
            entry = self._entries[target.id] = _Entry(target)
            self._push(entry, self._now())
            metrics.health_targets_scheduled.set(len(self._entries))
            return
        old = entry.target
        if old == target:
            return
        entry.target = target
        self._cancel_probe(entry)
        if old.interval_seconds != target.interval_seconds:
            entry.generation += 1
            earliest = self._now()
            if entry.last_fired is not None:
                earliest = max(earliest, entry.last_fired + target.interval_seconds / 2)
            self._push(entry, earliest)
            self._compact_if_stale()

    def remove(self, target_id: int) -> None:
        entry = self._entries.pop(target_id, None)
        if entry is not None:
            self._cancel_probe(entry)
            metrics.health_targets_scheduled.set(len(self._entries))
            self._compact_if_stale()

    def sync(self, targets: Iterable[Target]) -> None:
        """Make the scheduled set exactly ``targets`` (upserting each, removing the rest)."""
        wanted: set[int] = set()
        for target in targets:
            wanted.add(target.id)
            self.upsert(target)
        for target_id in [i for i in self._entries if i not in wanted]:
            self.remove(target_id)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._entries

    # -- firing ---------------------------------------------------------------------
    def _now(self) -> float:
        if self._loop is None or self._closed:
            raise RuntimeError("use the Scheduler inside `async with`")
        return self._loop.time()

    def _next_slot(self, entry: _Entry, earliest: float) -> float:
        interval = entry.target.interval_seconds
        k = math.ceil((earliest + self._epoch) / interval - entry.phase)
        return (k + entry.phase) * interval - self._epoch

    def _push(self, entry: _Entry, earliest: float) -> None:
        due = self._next_slot(entry, earliest)
        heapq.heappush(self._heap, (due, entry.target.id, entry.generation))
        if due < self._timer_at:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # Reset whatever the state: _fire leaves -inf, and a heap it emptied must not keep
        # it, or no later _push would ever arm the timer again.
        self._timer, self._timer_at = None, math.inf
        if self._heap and self._loop is not None:
            self._timer_at = self._heap[0][0]
            self._timer = self._loop.call_at(self._timer_at, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer, self._timer_at = None, -math.inf  # no arming until the end
        now = loop.time()
        heap = self._heap
        try:
            while heap and heap[0][0] <= now:
                due, target_id, generation = heap[0]
                entry = self._entries.get(target_id)
                if entry is None or entry.generation != generation:
                    heapq.heappop(heap)  # removed or moved to another grid since
                    continue
                if entry.task is None:
                    # The task drops itself from _tasks as it ends: a done callback would
                    # cost one more loop turn per probe.
                    task = loop.create_task(self._run(entry, entry.target, due))
                    self._tasks.add(task)
                    entry.task = task
                else:
                    metrics.health_probes_skipped_total.inc()
                entry.last_fired = now
                following = self._next_slot(entry, now + entry.target.interval_seconds / 2)
                heapq.heapreplace(heap, (following, target_id, generation))
        finally:
            self._arm()

    async def _run(self, entry: _Entry, target: Target, scheduled: float) -> None:
        host = target.endpoint.host
        try:
            await self._acquire(host)
            try:
                now = asyncio.get_running_loop().time()
                # Firings are half an interval apart at least, but a probe that waited
                # long for a slot could still start just before the next one: skip it.
                if now - entry.last_started < target.interval_seconds / 2:
                    metrics.health_probes_skipped_total.inc()
                    return
                entry.last_started = now
                lag = now - scheduled
                metrics.health_probe_lag_seconds.observe(lag)
                if self._lag_observer is not None:
                    self._lag_observer(target, lag)
                try:
                    result = await self._probe(target)
                except Exception:  # a probe is meant to return failures, not raise them
                    log.exception("probe raised", target_id=target.id)
                    return
            finally:
                self._release_global()
                self._release_host(host)
            self._kinds[target.endpoint.kind].observe(result.latency_ms / 1000)
            reason = "ok" if result.error is None else result.error.reason
            self._finished[reason] = self._finished.get(reason, 0) + 1
            if self._entries.get(target.id) is not entry or entry.target is not target:
                metrics.health_probe_results_dropped_total.inc()
                return
            entry.delivering = True
            try:
                await self._sink(target, result)
            except Exception:
                log.exception("probe result sink failed", target_id=target.id)
        finally:
            task = asyncio.current_task()
            self._tasks.discard(task)
            if entry.task is task:
                entry.task, entry.delivering = None, False

    def _flush_metrics(self) -> None:
        for reason, count in self._finished.items():
            counter = self._counters.get(reason)
            if counter is None:  # one per reason: REASONS is a closed set
                status = "up" if reason == "ok" else "down"
                counter = self._counters[reason] = metrics.health_probes_total.labels(
                    status, reason
                )
            counter.inc(count)
        self._finished.clear()
        metrics.health_probes_in_flight.set(self._in_flight)
        if not self._closed and self._loop is not None:
            self._flusher = self._loop.call_later(METRICS_FLUSH_SECONDS, self._flush_metrics)

    # -- slots: a host slot first, then a global one ----------------------------------
    async def _acquire(self, host: str) -> None:
        """Hold one slot for ``host`` and one global slot, or raise (cancelled) with none."""
        held = self._host_held.get(host, 0)
        if held < self.limits.max_per_host and host not in self._host_waiters:
            self._host_held[host] = held + 1
        else:
            waiter = self._wait_in(self._host_waiters.setdefault(host, deque()))
            try:
                await waiter  # a releaser hands its host slot over: the count stays
            except asyncio.CancelledError:
                if not waiter.cancelled():  # handed over, then cancelled: hand it back
                    self._release_host(host)
                raise
        if self._in_flight < self.limits.max_in_flight and not self._global_waiters:
            self._in_flight += 1
            return
        waiter = self._wait_in(self._global_waiters)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():
                self._release_global()
            self._release_host(host)
            raise

    def _wait_in(self, queue: deque[asyncio.Future[None]]) -> asyncio.Future[None]:
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        queue.append(waiter)
        return waiter

    def _release_host(self, host: str) -> None:
        queue = self._host_waiters.get(host)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():  # cancelled ones are skipped
                waiter.set_result(None)
                if not queue:
                    del self._host_waiters[host]
                return
        self._host_waiters.pop(host, None)
        held = self._host_held[host] - 1
        if held:
            self._host_held[host] = held
        else:
            del self._host_held[host]

    def _release_global(self) -> None:
        queue = self._global_waiters
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1

    def _cancel_probe(self, entry: _Entry) -> None:
        # A result being delivered is let through: the sink may be mid-write.
        if entry.task is not None and not entry.delivering:
            entry.task.cancel()
            # A task cancelled before its first step never runs its own clean-up.
            entry.task.add_done_callback(self._tasks.discard)
            entry.task = None

    def _compact_if_stale(self) -> None:
        # Removed targets leave heap items behind until their due time; bound them.
        if len(self._heap) > 2 * len(self._entries) + 1024:
            self._heap = [
                item
                for item in self._heap
                if (e := self._entries.get(item[1])) is not None and e.generation == item[2]
            ]
            heapq.heapify(self._heap)
            self._arm()
