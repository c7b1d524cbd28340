"""The scheduler against real servers on loopback: cadence, changes, caps, no bursts.

Time is only ever asserted as counts per interval window, with wide margins, and waits
have deadlines.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from switchyard_health_checker.probes import Prober
from switchyard_health_checker.scheduler import Limits, Scheduler, phase_of
from switchyard_health_checker.targets import ProbeResult, Target


def target(target_id: int, url: str, interval: float = 0.2, **fields: Any) -> Target:
    fields.setdefault("timeout_seconds", interval)
    return Target(target_id, f"t{target_id}", url, interval_seconds=interval, **fields)


async def until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    async with asyncio.timeout(deadline):
        while not condition():
            await asyncio.sleep(0.02)


class Results:
    """A sink that records what reaches it."""

    def __init__(self) -> None:
        self.by_target: Counter[int] = Counter()
        self.results: list[ProbeResult] = []

    async def __call__(self, target: Target, result: ProbeResult) -> None:
        self.by_target[target.id] += 1
        self.results.append(result)


def skipped() -> float:
    return REGISTRY.get_sample_value("health_probes_skipped_total") or 0.0


def test_phases_spread_consecutive_ids_evenly() -> None:
    phases = sorted(phase_of(i) for i in range(1, 1001))
    assert all(0 <= p < 1 for p in phases)
    gaps = [b - a for a, b in itertools.pairwise(phases)]
    assert max(gaps) < 3 / 1000  # no clump, no hole: 1,000 targets over 1,000 slots
    assert phase_of(42) == phase_of(42)


def test_each_target_is_probed_once_per_interval(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        results = Results()
        async with serve() as server, Prober() as prober:
            async with Scheduler(prober.probe, results) as scheduler:
                for i in range(50):
                    scheduler.upsert(target(i, server.url(f"/t/{i}")))
                assert len(scheduler) == 50
                await asyncio.sleep(2.0)  # ten intervals
            counts = [server.hits[f"/t/{i}"] for i in range(50)]
            # Ten intervals: never more than one probe per interval (plus the edges); at
            # least one per interval unless the loop (on a busy machine) fell behind.
            assert max(counts) <= 11, counts
            assert min(counts) >= 6, counts
            assert all(results.by_target[i] >= 6 for i in range(50))
            assert all(r.status == "up" for r in results.results)

    run(scenario())


def test_a_removed_target_is_never_probed_again_and_its_result_is_dropped(
    run: Any, serve: Any
) -> None:
    async def scenario() -> None:
        results = Results()
        async with (
            serve() as server,
            Prober() as prober,
            Scheduler(prober.probe, results) as scheduler,
        ):
            scheduler.upsert(target(1, server.url("/t/1")))
            scheduler.upsert(target(2, server.url("/held/2"), interval=1.0))
            await until(lambda: server.hits["/t/1"] >= 2 and server.in_flight == 1)
            scheduler.remove(1)
            scheduler.remove(2)  # its probe is in flight, held by the server
            seen = server.hits["/t/1"]
            assert len(scheduler) == 0
            await until(lambda: server.in_flight == 0)  # the probe was cancelled
            await asyncio.sleep(1.0)  # five intervals of target 1
            assert server.hits["/t/1"] <= seen + 1  # one may have been on the wire
            delivered_1 = results.by_target[1]
            assert results.by_target[2] == 0
            await asyncio.sleep(0.4)
            assert server.hits["/t/1"] <= seen + 1
            assert results.by_target[1] == delivered_1
            assert server.hits["/held/2"] == 1

    run(scenario())


def test_a_target_added_after_all_were_removed_and_their_slots_passed_is_probed(
    run: Any, serve: Any
) -> None:
    # Found in the dev stack: 2,000 targets deleted, their last heap items fired, and the
    # emptied heap left the timer unarmable: a target added later was never probed.
    async def scenario() -> None:
        results = Results()
        async with (
            serve() as server,
            Prober() as prober,
            Scheduler(prober.probe, results) as scheduler,
        ):
            scheduler.upsert(target(1, server.url("/t/1")))
            await until(lambda: server.hits["/t/1"] >= 1)
            scheduler.remove(1)
            await asyncio.sleep(0.5)  # its stale slot comes due and empties the heap
            scheduler.upsert(target(2, server.url("/t/2")))
            await until(lambda: results.by_target[2] >= 2)

    run(scenario())


def test_a_changed_interval_or_url_applies_at_once(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with (
            serve() as server,
            Prober() as prober,
            Scheduler(prober.probe, Results()) as scheduler,
        ):
            scheduler.upsert(target(1, server.url("/t/1")))
            await until(lambda: server.hits["/t/1"] >= 3)
            scheduler.upsert(target(1, server.url("/t/1"), interval=60.0, timeout_seconds=5))
            slowed = server.hits["/t/1"]
            await asyncio.sleep(1.0)  # five old intervals, a sixtieth of the new one
            assert server.hits["/t/1"] <= slowed + 1
            scheduler.upsert(target(1, server.url("/ok")))
            await until(lambda: server.hits["/ok"] >= 3)
            moved = server.hits["/t/1"]
            await asyncio.sleep(0.6)
            assert server.hits["/t/1"] == moved
            scheduler.sync([target(2, server.url("/t/2"))])
            assert 1 not in scheduler and 2 in scheduler
            await until(lambda: server.hits["/t/2"] >= 2)

    run(scenario())


def test_per_host_and_global_caps_hold(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as busy, serve("127.0.0.2") as other, Prober() as prober:
            limits = Limits(max_in_flight=10, max_per_host=2)
            async with Scheduler(prober.probe, Results(), limits) as scheduler:
                for i in range(6):
                    scheduler.upsert(target(i, busy.url(f"/held/{i}"), interval=1.0))
                scheduler.upsert(target(9, other.url("/t/9")))
                await until(lambda: busy.max_in_flight == 2 and other.hits["/t/9"] >= 3)
                await asyncio.sleep(0.5)
                assert busy.max_in_flight == 2  # six due, two at a time
            async with serve() as held, Scheduler(prober.probe, Results(), Limits(3, 100)) as s:
                for i in range(6):
                    s.upsert(target(i, held.url(f"/held/{i}"), interval=1.0))
                await until(lambda: held.max_in_flight == 3)
                await asyncio.sleep(0.5)
                assert held.max_in_flight == 3

    run(scenario())


def test_falling_behind_never_bursts_a_backlog(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server, Prober() as prober:
            async with Scheduler(prober.probe, Results()) as scheduler:
                for i in range(10):
                    scheduler.upsert(target(i, server.url(f"/t/{i}")))
                await asyncio.sleep(1.0)
                time.sleep(1.0)  # the loop is stuck for five intervals
                await asyncio.sleep(1.0)
            counts = [server.hits[f"/t/{i}"] for i in range(10)]
            # About 5 + 1 + 5; replaying the five missed firings would make about 15.
            assert max(counts) <= 13, counts
            assert min(counts) >= 6, counts

    run(scenario())


def test_the_sink_sees_one_result_at_a_time_per_target_and_may_fail(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        active: Counter[int] = Counter()
        most: Counter[int] = Counter()
        calls: Counter[int] = Counter()

        async def slow_failing_sink(target: Target, result: ProbeResult) -> None:
            calls[target.id] += 1
            active[target.id] += 1
            most[target.id] = max(most[target.id], active[target.id])
            try:
                await asyncio.sleep(0.5)  # longer than the interval
                raise RuntimeError("the sink is broken")
            finally:
                active[target.id] -= 1

        before = skipped()
        async with serve() as server, Prober() as prober:
            async with Scheduler(prober.probe, slow_failing_sink) as scheduler:
                scheduler.upsert(target(1, server.url("/t/1")))
                await until(lambda: calls[1] >= 3)
            assert most[1] == 1
            assert skipped() > before
            with pytest.raises(RuntimeError, match="async with"):
                scheduler.upsert(target(2, server.url("/t/2")))  # closed: nothing fires
            assert server.hits["/t/1"] <= calls[1] + 1

    run(scenario())


def test_a_probe_that_raises_is_logged_and_the_schedule_goes_on(run: Any) -> None:
    async def scenario() -> None:
        calls = Counter[int]()
        results = Results()

        async def broken(target: Target) -> ProbeResult:
            calls[target.id] += 1
            raise RuntimeError("a bug in a probe")

        async with Scheduler(broken, results) as scheduler:
            scheduler.upsert(target(1, "http://never.invalid/"))
            await until(lambda: calls[1] >= 3)
        assert results.by_target[1] == 0

    run(scenario())


def test_probes_waiting_for_a_slot_can_be_removed_without_leaking_it(run: Any) -> None:
    """Caps hold with waiters queued at both levels, and removing targets whose probes
    hold or wait for slots gives every slot back (a leak would cap the engine lower)."""

    async def scenario() -> None:
        gate = asyncio.Event()
        active: Counter[str] = Counter()
        most: Counter[str] = Counter()
        probed: Counter[int] = Counter()

        async def held_probe(t: Target) -> ProbeResult:
            host = t.endpoint.host
            probed[t.id] += 1
            active[host] += 1
            active["*"] += 1
            most[host] = max(most[host], active[host])
            most["*"] = max(most["*"], active["*"])
            try:
                await gate.wait()
            finally:
                active[host] -= 1
                active["*"] -= 1
            return ProbeResult(t.id, datetime.now(UTC), 1.0, 200)

        baseline = len(asyncio.all_tasks())
        limits = Limits(max_in_flight=2, max_per_host=1)
        async with Scheduler(held_probe, Results(), limits) as scheduler:
            hosts = ["a.test"] * 4 + ["b.test"] * 2 + ["c.test"]
            for i, host in enumerate(hosts):
                scheduler.upsert(target(i, f"http://{host}/", interval=0.1))
            await until(lambda: active["*"] == 2)
            await asyncio.sleep(0.3)  # three intervals with waiters at both levels
            assert most["*"] == 2 and max(most[h] for h in hosts) == 1
            for i in range(7):  # in flight, waiting for a host, waiting for a global slot
                scheduler.remove(i)
            await until(lambda: active["*"] == 0)
            assert len(asyncio.all_tasks()) == baseline  # no probe task left behind
            # Every slot came back: two new hosts get both global slots, and host a
            # (whose probe was cancelled holding its slot) is probed again.
            for i, host in enumerate(["a.test", "d.test"], start=10):
                scheduler.upsert(target(i, f"http://{host}/", interval=0.1))
            await until(lambda: active["*"] == 2)
            assert probed[10] >= 1 and probed[11] >= 1
            gate.set()
            await until(lambda: probed[10] >= 3)

    run(scenario())


def test_probes_that_wait_for_slots_never_start_within_half_an_interval(run: Any) -> None:
    """Probes queue for seconds behind slow ones, then the queue drains at once: a probe
    that waited must not run just before its target's next, on-time one (the guarantee
    is about starts, not only firings)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        starts: dict[int, list[float]] = {}
        begin = loop.time()

        async def slow_then_fast_probe(t: Target) -> ProbeResult:
            starts.setdefault(t.id, []).append(loop.time())
            await asyncio.sleep(0.3 if loop.time() - begin < 1.5 else 0.005)
            return ProbeResult(t.id, datetime.now(UTC), 1.0, 200)

        interval = 0.4
        async with Scheduler(slow_then_fast_probe, Results(), Limits(2, 2)) as scheduler:
            for i in range(20):  # 15 slots' worth of work per interval at first, 2 slots
                scheduler.upsert(target(i, "http://one.test/", interval=interval))
            await asyncio.sleep(3.5)
        gaps = [b - a for s in starts.values() for a, b in itertools.pairwise(s)]
        assert len(gaps) >= 40  # it went on probing after the queue drained
        assert min(gaps) >= interval / 2, sorted(gaps)[:5]

    run(scenario())
