"""The jobs state machine against real PostgreSQL: every transition checks the state it
leaves, fencing tokens stop a worker that lost its lease, limits hold across claimers,
schedules fire once per fire time, one leader at a time."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.jobs import lifecycle, store
from switchyard.jobs.leader import LeaderLease, LostLeadership
from switchyard.jobs.records import AttemptResult, ClaimedJob, JobTopics, NewJob, TypeLimit
from switchyard.kafka.topics import job_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(settings: Settings) -> JobTopics:
    return job_topics(settings)


def _type() -> str:
    """A job type of its own per test, so counts and limits never see another test's jobs."""
    return f"test-{uuid.uuid4().hex[:10]}"


def _new(job_type: str, **fields: Any) -> NewJob:
    return NewJob(
        **{"type": job_type, "payload": {"n": 1}, "max_attempts": 3, "timeout_seconds": 60} | fields
    )


def _outbox(engine: sa.Engine, job_id: str) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT topic, headers, payload FROM outbox WHERE key = :k ORDER BY id"),
            {"k": job_id},
        ).all()


def _status(engine: sa.Engine, job_id: str) -> str:
    job = store.get_job(engine, job_id)
    assert job is not None
    return job.status


def _done(job: ClaimedJob, outcome: str = "succeeded", **fields: Any) -> AttemptResult:
    now = datetime.now(UTC)
    return AttemptResult(job=job, outcome=outcome, started_at=now, finished_at=now, **fields)  # type: ignore[arg-type]


def _finish(
    engine: sa.Engine, topics: JobTopics, results: Sequence[AttemptResult], **limits: TypeLimit
) -> list[AttemptResult]:
    return lifecycle.finish(engine, results, topics, 0.01, 0.02, limits)


def test_enqueue_writes_the_job_and_its_event_together(
    engine: sa.Engine, topics: JobTopics
) -> None:
    job, created = store.enqueue(engine, _new(_type()), topics, request_id="req-1")
    assert created and job.status == "queued" and job.attempts == 0
    [event] = _outbox(engine, job.id)
    assert event.topic == topics.jobs
    assert event.headers["x-request-id"] == "req-1"
    later, _ = store.enqueue(
        engine, _new(_type(), run_at=datetime.now(UTC) + timedelta(hours=1)), topics
    )
    assert later.status == "scheduled"
    assert _outbox(engine, later.id) == []  # the leader announces it when due


def test_an_idempotency_key_stores_one_job_under_concurrent_requests(
    engine: sa.Engine, topics: JobTopics
) -> None:
    key = f"key-{uuid.uuid4()}"
    outcomes: list[tuple[str, bool]] = []

    def send() -> None:
        job, created = store.enqueue(engine, _new(_type(), idempotency_key=key), topics)
        outcomes.append((job.id, created))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job_id for job_id, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1
    assert len(_outbox(engine, outcomes[0][0])) == 1


def test_a_job_is_claimed_once_and_a_stale_token_records_nothing(
    engine: sa.Engine, topics: JobTopics
) -> None:
    job, _ = store.enqueue(engine, _new(_type()), topics)
    [claimed] = lifecycle.claim(engine, [job.id, "not-a-uuid"], "w1", 30, {})
    assert claimed.attempt == 1 and claimed.payload == {"n": 1}
    assert lifecycle.claim(engine, [job.id], "w2", 30, {}) == []  # a duplicate message
    assert lifecycle.heartbeat(engine, [claimed.lease_token], 30) == {claimed.lease_token}
    forged = ClaimedJob(**{**claimed.__dict__, "lease_token": claimed.lease_token + 10**9})
    assert _finish(engine, topics, [_done(forged)]) != []
    assert _status(engine, job.id) == "running"
    assert _finish(engine, topics, [_done(claimed, result={"ok": True})]) == []
    done = store.get_job(engine, job.id)
    assert done is not None and done.status == "succeeded" and done.result == {"ok": True}
    assert lifecycle.heartbeat(engine, [claimed.lease_token], 30) == set()
    [attempt] = store.list_attempts(engine, job.id)
    assert attempt.outcome == "succeeded" and attempt.worker == "w1"


def test_failures_retry_through_a_tier_then_die_with_every_error(
    engine: sa.Engine, topics: JobTopics
) -> None:
    job, _ = store.enqueue(engine, _new(_type(), max_attempts=2), topics)
    [first] = lifecycle.claim(engine, [job.id], "w1", 30, {})
    _finish(engine, topics, [_done(first, "failed", error="boom 1")])
    assert _status(engine, job.id) == "retrying"
    retry_event = _outbox(engine, job.id)[-1]
    assert retry_event.topic == topics.retry_tiers[0][0]
    assert float(retry_event.headers["retry-not-before"]) > time.time() - 5
    assert lifecycle.claim(engine, [job.id], "w1", 30, {}) == []  # not queued yet
    assert lifecycle.requeue(engine, [(job.id, 2)], topics) == 1
    assert lifecycle.requeue(engine, [(job.id, 2)], topics) == 0  # a redelivered record
    [second] = lifecycle.claim(engine, [job.id], "w1", 30, {})
    assert second.attempt == 2
    _finish(engine, topics, [_done(second, "timed_out", error="timed out after 60 s")])
    dead = store.get_job(engine, job.id)
    assert dead is not None and dead.status == "dead" and dead.attempts == 2
    assert dead.last_error == "timed out after 60 s"
    dlq = _outbox(engine, job.id)[-1]
    assert dlq.topic == topics.dead
    assert b'"boom 1"' in bytes(dlq.payload) and b"timed out after 60 s" in bytes(dlq.payload)
    assert [a.outcome for a in store.list_attempts(engine, job.id)] == ["failed", "timed_out"]

    with pytest.raises(store.JobStateConflict):
        store.cancel(engine, job.id)
    again = store.retry(engine, job.id, topics)
    assert again is not None and again.status == "queued" and again.max_attempts == 4
    with pytest.raises(store.JobStateConflict):
        store.retry(engine, job.id, topics)


def test_release_returns_a_running_job_without_counting_the_attempt(
    engine: sa.Engine, topics: JobTopics
) -> None:
    job, _ = store.enqueue(engine, _new(_type()), topics)
    [claimed] = lifecycle.claim(engine, [job.id], "w1", 30, {})
    assert lifecycle.release(engine, [claimed], topics) == 1
    back = store.get_job(engine, job.id)
    assert back is not None and back.status == "queued" and back.attempts == 0
    assert _outbox(engine, job.id)[-1].topic == topics.jobs
    assert _finish(engine, topics, [_done(claimed)]) != []  # its token is gone


def test_an_expired_lease_is_reaped_as_a_lost_attempt_and_fences_the_late_worker(
    engine: sa.Engine, topics: JobTopics, settings: Settings
) -> None:
    job, _ = store.enqueue(engine, _new(_type()), topics)
    [claimed] = lifecycle.claim(engine, [job.id], "w-dead", 0.05, {})
    time.sleep(0.2)
    leader = LeaderLease(engine, f"test-{uuid.uuid4()}", "me", 5)
    assert leader.try_acquire()
    with leader.transaction() as connection:
        assert lifecycle.reap_expired(connection, topics, 0.01, 0.02) >= 1
    assert _status(engine, job.id) == "retrying"
    assert _finish(engine, topics, [_done(claimed)]) != []  # the zombie's result is dropped
    [attempt] = store.list_attempts(engine, job.id)
    assert attempt.outcome == "lost" and "w-dead" in (attempt.error or "")


def test_a_concurrency_limit_holds_across_concurrent_claimers(
    engine: sa.Engine, topics: JobTopics
) -> None:
    job_type = _type()
    limits = {job_type: TypeLimit(concurrency=2)}
    ids = [store.enqueue(engine, _new(job_type), topics)[0].id for _ in range(6)]
    claimed: list[ClaimedJob] = []

    def claim(part: list[str]) -> None:
        claimed.extend(lifecycle.claim(engine, part, "w", 30, limits))

    threads = [threading.Thread(target=claim, args=(ids[i::3],)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 2
    with engine.connect() as connection:
        parked = connection.execute(
            sa.text("SELECT count(*) FROM jobs WHERE type = :t AND parked"), {"t": job_type}
        ).scalar_one()
    assert parked == 4
    _finish(engine, topics, [_done(claimed[0])], **limits)
    woken = [j for j in ids if _outbox(engine, j)[-1:] and len(_outbox(engine, j)) == 2]
    assert len(woken) == 1  # one slot freed: one parked job announced again
    assert len(lifecycle.claim(engine, woken, "w", 30, limits)) == 1


def test_a_rate_limit_spaces_starts_cluster_wide(engine: sa.Engine, topics: JobTopics) -> None:
    job_type = _type()
    limits = {job_type: TypeLimit(rate_per_second=5)}
    ids = [store.enqueue(engine, _new(job_type), topics)[0].id for _ in range(10)]
    claimed = lifecycle.claim(engine, ids[:5], "a", 30, limits)
    claimed += lifecycle.claim(engine, ids[5:], "b", 30, limits)
    # Slots 0.2 s apart, handed out up to a second ahead, across both claimers.
    delays = sorted(job.start_delay for job in claimed)
    assert len(delays) == 6
    assert all(abs(b - a - 0.2) < 0.05 for a, b in itertools.pairwise(delays))
    later = sorted(
        job.run_at
        for job in (store.get_job(engine, i) for i in ids)
        if job is not None and job.status == "scheduled"
    )
    assert len(later) == 4
    assert all(abs((b - a).total_seconds() - 0.2) < 0.01 for a, b in itertools.pairwise(later))


def test_one_leader_at_a_time_and_a_former_leader_cannot_commit(engine: sa.Engine) -> None:
    name = f"test-{uuid.uuid4()}"
    a = LeaderLease(engine, name, "a", 0.5)
    b = LeaderLease(engine, name, "b", 0.5)
    assert a.try_acquire() and not b.try_acquire()
    assert a.try_acquire()  # renewal keeps the token
    old_token = a.token
    time.sleep(0.7)  # a paused: its lease expires
    assert b.try_acquire() and b.token == (old_token or 0) + 1
    with pytest.raises(LostLeadership), a.transaction():
        pass
    with b.transaction() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    b.resign()
    assert a.try_acquire()


def test_a_schedule_fires_each_time_once_and_missed_times_once(
    engine: sa.Engine, topics: JobTopics
) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    store.create_schedule(engine, name, "* * * * *", "echo", {"hello": "world"})
    with pytest.raises(store.ScheduleExists):
        store.create_schedule(engine, name, "* * * * *", "echo", {})
    with engine.begin() as connection:  # an outage: ten fire times were missed
        connection.execute(
            sa.text(
                "UPDATE schedules SET next_fire_at = now() - interval '10 minutes' WHERE name = :n"
            ),
            {"n": name},
        )
    leader = LeaderLease(engine, f"test-{uuid.uuid4()}", "me", 5)
    assert leader.try_acquire()
    with leader.transaction() as connection:
        assert lifecycle.fire_schedules(connection, topics, 3, 60) >= 1
    with engine.begin() as connection:  # a paused former leader tries the same run again
        connection.execute(
            sa.text(
                "UPDATE schedules SET next_fire_at = now() - interval '10 minutes' WHERE name = :n"
            ),
            {"n": name},
        )
    with leader.transaction() as connection:
        lifecycle.fire_schedules(connection, topics, 3, 60)
    with engine.connect() as connection:
        runs = connection.execute(
            sa.text("SELECT count(*) FROM jobs WHERE schedule_name = :n"), {"n": name}
        ).scalar_one()
        next_fire = connection.execute(
            sa.text("SELECT next_fire_at > now() FROM schedules WHERE name = :n"), {"n": name}
        ).scalar_one()
    assert runs == 1 and next_fire
    with pytest.raises(ValueError, match="5 fields"):
        store.validate_cron("* * * *")
    with pytest.raises(ValueError, match="out of range"):
        store.validate_cron("61 * * * *")


def test_due_delayed_jobs_are_promoted_with_their_event(
    engine: sa.Engine, topics: JobTopics
) -> None:
    job, _ = store.enqueue(
        engine, _new(_type(), run_at=datetime.now(UTC) + timedelta(seconds=0.3)), topics
    )
    leader = LeaderLease(engine, f"test-{uuid.uuid4()}", "me", 5)
    assert leader.try_acquire()
    with leader.transaction() as connection:
        lifecycle.promote_due(connection, topics)
    assert _status(engine, job.id) == "scheduled"
    time.sleep(0.4)
    with leader.transaction() as connection:
        assert lifecycle.promote_due(connection, topics) >= 1
    assert _status(engine, job.id) == "queued"
    assert _outbox(engine, job.id)[-1].topic == topics.jobs


def test_cancel_replay_and_prune(engine: sa.Engine, topics: JobTopics) -> None:
    job_type = _type()
    queued, _ = store.enqueue(engine, _new(job_type), topics)
    cancelled = store.cancel(engine, queued.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert lifecycle.claim(engine, [queued.id], "w", 30, {}) == []
    assert store.cancel(engine, str(uuid.uuid4())) is None
    dead_ids = []
    for _ in range(3):
        job, _ = store.enqueue(engine, _new(job_type, max_attempts=1), topics)
        [claimed] = lifecycle.claim(engine, [job.id], "w", 30, {})
        _finish(engine, topics, [_done(claimed, "failed", error="no")])
        dead_ids.append(job.id)
    assert store.job_stats(engine).counts[job_type] == {"cancelled": 1, "dead": 3}
    assert store.replay_dead(engine, job_type, 2, topics) == dead_ids[:2]
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = :id"),
            {"id": queued.id},
        )
        assert lifecycle.prune_finished(connection, 86_400) >= 1
    assert store.get_job(engine, queued.id) is None


def test_a_failure_for_good_skips_the_remaining_attempts(
    engine: sa.Engine, topics: JobTopics
) -> None:
    job, _ = store.enqueue(engine, _new(_type(), max_attempts=5), topics)
    [claimed] = lifecycle.claim(engine, [job.id], "w", 30, {})
    _finish(engine, topics, [_done(claimed, "failed", error="refused", permanent=True)])
    dead = store.get_job(engine, job.id)
    assert dead is not None and dead.status == "dead" and dead.attempts == 1
    assert store.dead_count(engine) >= 1
    assert _outbox(engine, job.id)[-1].topic == topics.dead
