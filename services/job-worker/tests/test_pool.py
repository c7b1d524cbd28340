"""The pool without servers: results, the size bound, timeouts, lost leases, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from switchyard_job_worker.pool import JobPool
from switchyard_job_worker.registry import JobContext, JobFailed, Registry

from .conftest import Reports, claimed, wait_for

MakePool = Callable[..., tuple[JobPool, Reports]]


class Anything(BaseModel):
    model_config = ConfigDict(extra="allow")


class Count(BaseModel):
    n: int


class Probe:
    """What the test handlers saw: how many ran at once, which started, which were
    cancelled; ``release`` lets the blocked ones finish."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: set[str] = set()
        self.cancelled: set[str] = set()
        self.release = threading.Event()


def registry(probe: Probe) -> Registry:
    names = ("echo", "block", "sleep", "boom", "fail", "own_timeout", "stubborn", "big", "odd")
    catalogue: dict[str, type[BaseModel]] = dict.fromkeys(names, Anything)
    catalogue["count"] = Count
    reg = Registry(catalogue)

    @reg.handler("echo")
    async def echo(payload: Anything, job: JobContext) -> Any:
        return payload.model_dump()

    @reg.handler("count")
    async def count(payload: Count, job: JobContext) -> int:
        return payload.n

    @reg.handler("block")
    async def block(payload: Anything, job: JobContext) -> str:
        probe.started.add(job.job_id)
        probe.running += 1
        probe.most = max(probe.most, probe.running)
        try:
            while not probe.release.is_set():
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            probe.cancelled.add(job.job_id)
            raise
        finally:
            probe.running -= 1
        return "released"

    @reg.handler("sleep")
    async def sleep(payload: Anything, job: JobContext) -> str:
        await asyncio.sleep(float(payload.model_dump().get("seconds", 60)))
        return "slept"

    @reg.handler("boom")
    async def boom(payload: Anything, job: JobContext) -> None:
        raise ValueError("the payload made it explode")

    @reg.handler("fail")
    async def fail(payload: Anything, job: JobContext) -> None:
        raise JobFailed("plain message")

    @reg.handler("own_timeout")
    async def own_timeout(payload: Anything, job: JobContext) -> None:
        raise TimeoutError("the remote end was slow")

    @reg.handler("stubborn")
    async def stubborn(payload: Anything, job: JobContext) -> str:
        for _ in range(150):
            with contextlib.suppress(asyncio.CancelledError):  # as a careless handler might
                await asyncio.sleep(0.01)
        return "finished anyway"

    @reg.handler("big")
    async def big(payload: Anything, job: JobContext) -> str:
        return "x" * 10_000

    @reg.handler("odd")
    async def odd(payload: Anything, job: JobContext) -> Any:
        return {1, 2}

    return reg


def test_a_job_runs_and_stays_held_until_its_result_is_stored(make_pool: MakePool) -> None:
    pool, reports = make_pool(registry(Probe()))
    job = claimed("echo", {"hello": "world"})
    pool.submit([job])
    wait_for(lambda: len(reports.results) == 1)
    (result,) = reports.results
    assert (result.outcome, result.result, result.error) == ("succeeded", {"hello": "world"}, None)
    assert result.started_at <= result.finished_at
    assert pool.held_leases().keys() == {job.lease_token}  # the heartbeat still renews it
    assert pool.has_room()
    pool.settled([job.lease_token])
    assert pool.held_leases() == {}


def test_at_most_pool_size_jobs_run_at_once(make_pool: MakePool) -> None:
    probe = Probe()
    pool, reports = make_pool(registry(probe), pool_size=2)
    jobs = [claimed("block") for _ in range(5)]
    pool.submit(jobs)
    wait_for(lambda: len(probe.started) == 2)
    assert not pool.has_room()
    probe.release.set()
    wait_for(lambda: len(reports.results) == 5)
    assert probe.most == 2
    assert {r.outcome for r in reports.results} == {"succeeded"}


def test_a_job_past_its_timeout_is_stopped_and_counts_as_timed_out(make_pool: MakePool) -> None:
    pool, reports = make_pool(registry(Probe()))
    slow = claimed("sleep", {"seconds": 60}, timeout_seconds=1)
    stubborn = claimed("stubborn", timeout_seconds=1)
    own = claimed("own_timeout", timeout_seconds=30)
    pool.submit([slow, stubborn, own])
    wait_for(lambda: len(reports.results) == 3, timeout=20)
    results = reports.by_job()
    assert results[slow.id].outcome == "timed_out"
    assert results[slow.id].error == "timed out after 1s"
    assert results[stubborn.id].outcome == "timed_out"  # swallowing cancellation changes nothing
    # A TimeoutError of the handler's own (not the attempt's) is an ordinary failure.
    assert results[own.id].outcome == "failed"
    assert results[own.id].error == "TimeoutError: the remote end was slow"


def test_failures_name_what_went_wrong(make_pool: MakePool) -> None:
    pool, reports = make_pool(registry(Probe()))
    boom, plain, bad, odd = (
        claimed("boom"),
        claimed("fail"),
        claimed("count", {"n": "x"}),
        claimed("odd"),
    )
    pool.submit([boom, plain, bad, odd])
    wait_for(lambda: len(reports.results) == 4)
    results = reports.by_job()
    assert {r.outcome for r in results.values()} == {"failed"}
    assert results[boom.id].error == "ValueError: the payload made it explode"
    assert results[plain.id].error == "plain message"
    error = results[bad.id].error or ""
    assert error.startswith("invalid payload") and "n" in error
    assert "not JSON" in (results[odd.id].error or "")


def test_a_result_over_the_cap_is_kept_as_a_note(make_pool: MakePool) -> None:
    pool, reports = make_pool(registry(Probe()), max_result_bytes=1_000)
    pool.submit([claimed("big")])
    wait_for(lambda: len(reports.results) == 1)
    (result,) = reports.results
    assert result.outcome == "succeeded"
    assert result.result["truncated"] is True and result.result["bytes"] == 10_002
    assert len(result.result["excerpt"]) == 500


def test_a_lost_lease_cancels_the_job_and_reports_nothing(make_pool: MakePool) -> None:
    probe = Probe()
    pool, reports = make_pool(registry(probe), pool_size=1)
    job, other = claimed("block"), claimed("echo")
    pool.submit([job])
    wait_for(lambda: job.id in probe.started)
    assert not pool.has_room()
    pool.lost([job.lease_token], "lease taken back")
    wait_for(lambda: job.id in probe.cancelled)
    assert pool.held_leases() == {} and pool.has_room()
    pool.submit([other])  # its slot is free again
    wait_for(lambda: len(reports.results) == 1)
    assert reports.results[0].job == other


def test_drain_lets_quick_jobs_finish_and_returns_the_rest_unstarted_or_cancelled(
    make_pool: MakePool,
) -> None:
    probe = Probe()
    pool, reports = make_pool(registry(probe), pool_size=2)
    quick, stuck, waiting = claimed("sleep", {"seconds": 0.05}), claimed("block"), claimed("block")
    pool.submit([stuck, quick, waiting])
    wait_for(lambda: stuck.id in probe.started)
    interrupted = pool.drain(grace_seconds=2)
    assert {j.id for j in interrupted} == {stuck.id, waiting.id}
    assert [r.job.id for r in reports.results] == [quick.id]
    assert stuck.id in probe.cancelled and waiting.id not in probe.started
    assert not pool.has_room()
    # Held (their leases renewed) until released.
    assert set(pool.held_leases()) == {quick.lease_token, stuck.lease_token, waiting.lease_token}
