"""Two job-worker processes: a cron schedule fires each fire time once (also when the
leader is killed between fires), and a type's concurrency limit holds across both."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.jobs import store

from .conftest import JobWorker, enqueue, wait_for_jobs, wait_until_shared

pytestmark = pytest.mark.integration

Workers = Callable[..., JobWorker]


def scalar(engine: sa.Engine, sql: str, **params: object) -> object:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar()


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_a_cron_schedule_fires_each_time_once_across_a_leader_kill(
    workers: Workers, isolated: Settings, own_engine: sa.Engine
) -> None:
    pair = [workers(name).start() for name in ("a", "b")]
    wait_until_shared(pair)
    name = f"every-minute-{uuid.uuid4().hex[:6]}"
    with own_engine.begin() as connection:  # due now: the first run is at once
        connection.execute(
            sa.text(
                "INSERT INTO schedules (name, cron, type, payload, next_fire_at)"
                " VALUES (:name, '* * * * *', 'echo', '{\"tick\": true}', now())"
            ),
            {"name": name},
        )
    runs = "SELECT count(*) FROM schedule_runs WHERE schedule_name = :name"
    wait_until(lambda: scalar(own_engine, runs, name=name) == 1, 30)

    # Kill the leader: the other replica takes over within one lease and fires the next
    # minute's run, once.
    holder = str(scalar(own_engine, "SELECT holder FROM leader_leases"))
    [leader] = [w for w in pair if w.process and f"-{w.process.pid}-" in holder]
    leader.kill()
    now = scalar(own_engine, "SELECT now()")
    assert isinstance(now, datetime)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    wait_until(lambda: scalar(own_engine, runs, name=name) == 2, 90)

    with own_engine.connect() as connection:
        fire_times = (
            connection.execute(
                sa.text("SELECT fire_time FROM schedule_runs WHERE schedule_name = :n ORDER BY 1"),
                {"n": name},
            )
            .scalars()
            .all()
        )
        job_ids = (
            connection.execute(
                sa.text("SELECT id::text FROM jobs WHERE schedule_name = :n"), {"n": name}
            )
            .scalars()
            .all()
        )
    assert len(fire_times) == 2 and fire_times[1] == boundary
    assert len(job_ids) == 2  # one job per fire time, whoever tried
    jobs = wait_for_jobs(own_engine, job_ids, timeout=60)
    assert {j.status for j in jobs.values()} == {"succeeded"}


def test_a_concurrency_limit_holds_across_two_workers(
    workers: Workers, isolated: Settings, own_engine: sa.Engine
) -> None:
    limits = '{"sleep": {"concurrency": 2}}'
    pair = [workers(name, JOBS__LIMITS=limits).start() for name in ("a", "b")]
    wait_until_shared(pair)
    ids = [enqueue(own_engine, isolated, "sleep", {"seconds": 0.5}) for _ in range(10)]
    jobs = wait_for_jobs(own_engine, ids, timeout=90)
    assert {j.status for j in jobs.values()} == {"succeeded"}

    # The most attempts that ever ran at once, from their recorded start and end.
    events: list[tuple[datetime, int]] = []
    workers_seen: set[str] = set()
    for job_id in ids:
        [attempt] = store.list_attempts(own_engine, job_id)
        events += [(attempt.started_at, 1), (attempt.finished_at, -1)]
        workers_seen.add(attempt.worker)
    running = most = 0
    for _, change in sorted(events):  # an end sorts before a start at the same instant
        running += change
        most = max(most, running)
    assert most == 2
    assert len(workers_seen) == 2
