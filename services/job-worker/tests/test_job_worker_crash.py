"""Stopping and killing the job-worker loses no job: SIGTERM releases what it cannot
finish within its grace period, SIGKILL leaves leases that expire and are reaped."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.jobs import store

from .conftest import JobWorker, enqueue, outcomes, wait_for_jobs

pytestmark = pytest.mark.integration

Workers = Callable[..., JobWorker]


def wait_running(engine: sa.Engine, ids: Sequence[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [store.get_job(engine, i) for i in ids]
        if all(j is not None and j.status == "running" for j in jobs):
            return
        assert time.monotonic() < deadline, [j.status if j else None for j in jobs]
        time.sleep(0.1)


def test_sigterm_finishes_what_it_can_and_releases_the_rest(
    workers: Workers, isolated: Settings, own_engine: sa.Engine
) -> None:
    worker = workers(JOBS__SHUTDOWN_GRACE_SECONDS="3").start().wait_until_assigned()
    short = [enqueue(own_engine, isolated, "sleep", {"seconds": 0.5}) for _ in range(3)]
    long = [enqueue(own_engine, isolated, "sleep", {"seconds": 8}) for _ in range(5)]
    wait_running(own_engine, long)
    assert worker.stop() == 0

    # Nothing is left running: each job finished or went back to the queue uncounted.
    after = {i: store.get_job(own_engine, i) for i in short + long}
    assert {j.status for j in after.values() if j} <= {"succeeded", "queued"}
    for job_id in long:
        job = after[job_id]
        assert job is not None and (job.status, job.attempts) == ("queued", 0)
        assert outcomes(own_engine, job_id) == []

    worker.start()
    jobs = wait_for_jobs(own_engine, short + long, timeout=90)
    assert {j.status for j in jobs.values()} == {"succeeded"}
    assert all(outcomes(own_engine, i) == ["succeeded"] for i in short + long)


def test_sigkill_loses_nothing_the_leases_expire_and_the_jobs_run_again(
    workers: Workers, isolated: Settings, own_engine: sa.Engine
) -> None:
    worker = workers(JOBS__LEASE_SECONDS="2").start().wait_until_assigned()
    ids = [enqueue(own_engine, isolated, "sleep", {"seconds": 3}) for _ in range(4)]
    wait_running(own_engine, ids)
    worker.kill()

    worker.start()
    jobs = wait_for_jobs(own_engine, ids, timeout=90)
    assert {(j.status, j.attempts) for j in jobs.values()} == {("succeeded", 2)}
    for job_id in ids:
        assert outcomes(own_engine, job_id) == ["lost", "succeeded"]
