"""The job-worker as a real process against real PostgreSQL and Kafka: outcomes,
retries, the dead-letter topic, timeouts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.jobs import store
from switchyard.kafka.tail import iter_records
from switchyard.kafka.topics import job_topics

from .conftest import JobWorker, enqueue, outcomes, wait_for_jobs

pytestmark = pytest.mark.integration

Workers = Callable[..., JobWorker]


def test_echo_succeeds_once_and_retries_then_dead_letters(
    workers: Workers, isolated: Settings, own_engine: sa.Engine
) -> None:
    worker = workers().start().wait_until_assigned()
    echo = enqueue(own_engine, isolated, "echo", {"hello": "world", "n": [1, 2]})
    flaky = enqueue(own_engine, isolated, "fail", {"times": 2})
    doomed = enqueue(own_engine, isolated, "fail", {"times": 99}, max_attempts=3)
    jobs = wait_for_jobs(own_engine, [echo, flaky, doomed])

    assert (jobs[echo].status, jobs[echo].attempts) == ("succeeded", 1)
    assert jobs[echo].result == {"hello": "world", "n": [1, 2]}
    assert outcomes(own_engine, echo) == ["succeeded"]

    assert (jobs[flaky].status, jobs[flaky].attempts) == ("succeeded", 3)
    assert outcomes(own_engine, flaky) == ["failed", "failed", "succeeded"]

    assert (jobs[doomed].status, jobs[doomed].attempts) == ("dead", 3)
    assert outcomes(own_engine, doomed) == ["failed"] * 3
    assert "attempt 3 of the first 99" in (jobs[doomed].last_error or "")
    dead = [
        r.event
        for r in iter_records(isolated, job_topics(isolated).dead)
        if r.key == doomed.encode()
    ]
    assert [e.type for e in dead] == ["job.dead"]
    assert dead[0].data["attempts"] == 3

    samples = worker.metrics()
    assert samples['jobs_processed_total{status="succeeded",type="echo"}'] == 1
    assert samples['jobs_processed_total{status="failed",type="fail"}'] == 5
    assert samples['worker_failures_total{sink="jobs"}'] == 1
    assert samples['worker_retries_total{sink="jobs"}'] == 4


def test_a_sleep_past_its_timeout_is_stopped_and_counted_timed_out(
    workers: Workers, isolated: Settings, own_engine: sa.Engine
) -> None:
    worker = workers().start().wait_until_assigned()
    slow = enqueue(own_engine, isolated, "sleep", {"seconds": 600}, 1, timeout_seconds=1)
    job = wait_for_jobs(own_engine, [slow], timeout=30)[slow]
    assert (job.status, job.last_error) == ("dead", "timed out after 1s")
    [attempt] = store.list_attempts(own_engine, slow)
    assert attempt.outcome == "timed_out"
    assert (attempt.finished_at - attempt.started_at).total_seconds() < 60
    assert worker.metrics()['jobs_processed_total{status="timed_out",type="sleep"}'] == 1
