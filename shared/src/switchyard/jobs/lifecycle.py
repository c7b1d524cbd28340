"""The job-worker's side of a job's life: claim, heartbeat, finish, release, requeue,
and the leader's duties (promote due jobs, reap lost leases, wake parked jobs).

Guarantee: a job runs only under a lease with a fencing token taken by :func:`claim`
(``queued`` → ``running``, in one statement per batch); every later write of that
attempt (:func:`finish`, :func:`release`) names the token and changes nothing once the
token moved on (the lease expired and the reaper took the job back). Events the changes
cause (``job.retry``, ``job.dead``, ``job.enqueued``) go to the outbox in the same
transaction. Cluster-wide limits are enforced in :func:`claim`: a type's concurrency
under a transaction-scoped advisory lock on the type, its rate as a reserved slot in
``job_rate_limits``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
import sqlalchemy as sa

from switchyard.db.models import jobs as models
from switchyard.jobs import events
from switchyard.jobs.records import AttemptResult, ClaimedJob, JobTopics, NewJob, TypeLimit
from switchyard.jobs.store import insert_job, latest_fire_time, next_fire_time

jobs = cast(sa.Table, models.Job.__table__)
attempts = cast(sa.Table, models.JobAttempt.__table__)
MAX_ERROR_CHARS = 4_000
_CONCURRENCY_LOCK = 0x4A6F_6273  # "Jobs": first key of the per-type advisory lock
# A rate-limited job is held by its worker until its slot if the slot is this close.
RATE_HORIZON_SECONDS = 1.0

_CLAIMED = """
    UPDATE jobs SET status = 'running', attempts = jobs.attempts + 1,
        lease_token = nextval('job_lease_tokens'), lease_owner = :worker,
        lease_expires_at = now() + make_interval(secs => :lease), started_at = now(),
        finished_at = NULL, parked = false, updated_at = now()
    FROM chosen WHERE jobs.id = chosen.id
    RETURNING jobs.id, jobs.type, jobs.payload, jobs.attempts, jobs.max_attempts,
        jobs.timeout_seconds, jobs.lease_token, chosen.queued_at, jobs.request_id,
        jobs.traceparent
"""


def _ids(values: Iterable[str]) -> list[str]:
    valid = []
    for value in values:
        try:
            valid.append(str(uuid.UUID(value)))
        except (ValueError, AttributeError, TypeError):
            continue  # not a job id: nothing to claim
    return sorted(set(valid))  # one lock order for every claimer: no deadlocks


def _claimed(row: Any, start_delay: float = 0.0) -> ClaimedJob:
    return ClaimedJob(
        id=str(row.id),
        type=row.type,
        payload=row.payload,
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        timeout_seconds=row.timeout_seconds,
        lease_token=row.lease_token,
        queued_at=row.queued_at,
        request_id=row.request_id,
        traceparent=row.traceparent,
        start_delay=start_delay,
    )


def claim(
    engine: sa.Engine,
    job_ids: Sequence[str],
    worker: str,
    lease_seconds: float,
    limits: Mapping[str, TypeLimit],
) -> list[ClaimedJob]:
    """Take the ``queued`` jobs among ``job_ids`` (others are skipped: a duplicate
    message, a cancelled job, one already running); a job over its type's concurrency
    limit is parked, one over its rate limit is rescheduled to its reserved slot."""
    ids = _ids(job_ids)
    if not ids:
        return []
    params = {"ids": ids, "worker": worker, "lease": lease_seconds}
    with engine.begin() as connection:
        if not limits:
            rows = connection.execute(
                sa.text(
                    "WITH chosen AS (SELECT id, updated_at AS queued_at FROM jobs"  # noqa: S608
                    " WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'queued' AND NOT parked"
                    " ORDER BY id FOR UPDATE)" + _CLAIMED
                ),
                params,
            ).all()
            return [_claimed(row) for row in rows]
        candidates = connection.execute(
            sa.text(
                "SELECT id, type, updated_at FROM jobs"
                " WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'queued' AND NOT parked"
                " ORDER BY id FOR UPDATE"
            ),
            params,
        ).all()
        runnable = _apply_limits(connection, candidates, limits)
        if not runnable:
            return []
        rows = connection.execute(
            sa.text(
                "WITH chosen AS (SELECT id, updated_at AS queued_at FROM jobs"  # noqa: S608
                " WHERE id = ANY(CAST(:run AS uuid[])))" + _CLAIMED
            ),
            {**params, "run": [str(i) for i in runnable]},
        ).all()
    return [_claimed(row, runnable[row.id]) for row in rows]


def _apply_limits(
    connection: sa.Connection, candidates: Sequence[Any], limits: Mapping[str, TypeLimit]
) -> dict[Any, float]:
    """The jobs that may run, each with how long to wait before it starts (its rate
    slot); parks or reschedules the others (same transaction)."""
    by_type: dict[str, list[Any]] = {}
    for row in candidates:
        by_type.setdefault(row.type, []).append(row)
    runnable: dict[Any, float] = {}
    for job_type in sorted(by_type):  # one lock order for every claimer
        rows = by_type[job_type]
        limit = limits.get(job_type)
        if limit is None:
            runnable |= dict.fromkeys((row.id for row in rows), 0.0)
            continue
        if limit.concurrency is not None:
            free = _free_slots(connection, job_type, limit.concurrency)
            rows, over = rows[:free], rows[free:]
            if over:
                connection.execute(
                    sa.update(jobs)
                    .where(jobs.c.id.in_([row.id for row in over]))
                    .values(parked=True)
                )
        if limit.rate_per_second is None:
            runnable |= dict.fromkeys((row.id for row in rows), 0.0)
        else:
            runnable |= _take_rate_slots(connection, job_type, limit.rate_per_second, rows)
    return runnable


def _free_slots(connection: sa.Connection, job_type: str, concurrency: int) -> int:
    """Running jobs of the type counted under a lock held until commit, so two claimers
    (on any replicas) never both see the last free slot."""
    connection.execute(
        sa.select(sa.func.pg_advisory_xact_lock(_CONCURRENCY_LOCK, sa.func.hashtext(job_type)))
    )
    running = connection.execute(
        sa.select(sa.func.count()).where(jobs.c.type == job_type, jobs.c.status == "running")
    ).scalar_one()
    return max(0, concurrency - running)


def _take_rate_slots(
    connection: sa.Connection, job_type: str, rate: float, rows: Sequence[Any]
) -> dict[Any, float]:
    """Starts of the type are spaced ``1/rate`` apart, cluster-wide: a job takes the
    type's next slot if it is at most :data:`RATE_HORIZON_SECONDS` away and its worker
    starts it exactly then; the others wait as ``scheduled`` until about their turn and
    try again. Slots are handed out in order under the row lock of ``job_rate_limits``,
    and a job is never let through late in a burst, so no window of a second holds more
    than ``rate`` starts (plus one)."""
    gap = 1.0 / rate
    taken: dict[Any, float] = {}
    later = []
    for row in rows:
        reserved = connection.execute(
            sa.text(
                "INSERT INTO job_rate_limits AS r (type, next_slot_at)"
                " VALUES (:type, now() + make_interval(secs => :gap))"
                " ON CONFLICT (type) DO UPDATE SET next_slot_at ="
                "  greatest(r.next_slot_at, now()) + make_interval(secs => :gap)"
                " WHERE greatest(r.next_slot_at, now())"
                "  <= now() + make_interval(secs => :horizon)"
                " RETURNING extract(epoch FROM next_slot_at - now()) - :gap"
            ),
            {"type": job_type, "gap": gap, "horizon": RATE_HORIZON_SECONDS},
        ).scalar_one_or_none()
        if reserved is None:
            later.append(row)
        else:
            taken[row.id] = max(0.0, float(reserved))
    if later:
        # Spread over the time the slots already handed out will take, in order.
        connection.execute(
            sa.text(
                "UPDATE jobs SET status = 'scheduled', updated_at = now(),"
                " run_at = (SELECT next_slot_at FROM job_rate_limits WHERE type = :type)"
                "  + make_interval(secs => :gap * v.n - :horizon)"
                " FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS v(id, n)"
                " WHERE jobs.id = v.id"
            ),
            {
                "type": job_type,
                "gap": gap,
                "horizon": RATE_HORIZON_SECONDS / 2,
                "ids": [str(row.id) for row in later],
            },
        )
    return taken


def heartbeat(engine: sa.Engine, tokens: Sequence[int], lease_seconds: float) -> set[int]:
    """Extend the leases; returns the tokens still held (a missing one: stop that job)."""
    if not tokens:
        return set()
    with engine.begin() as connection:
        rows = connection.execute(
            sa.text(
                "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease)"
                " WHERE lease_token = ANY(CAST(:tokens AS bigint[])) AND status = 'running'"
                " RETURNING lease_token"
            ),
            {"tokens": list(tokens), "lease": lease_seconds},
        ).scalars()
        return set(rows)


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential in the attempt, half of it jittered, so retries of jobs that failed
    together spread out but none comes back at once."""
    delay = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return delay / 2 + random.uniform(0, delay / 2)


def _tier(topics: JobTopics, delay: float) -> str:
    for topic, tier_delay in topics.retry_tiers:
        if tier_delay >= delay:
            return topic
    return topics.retry_tiers[-1][0]


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def finish(
    engine: sa.Engine,
    results: Sequence[AttemptResult],
    topics: JobTopics,
    retry_base_seconds: float,
    retry_cap_seconds: float,
    limits: Mapping[str, TypeLimit],
) -> list[AttemptResult]:
    """Record the attempts in one transaction: ``succeeded``, or ``retrying`` (a
    ``job.retry`` to its tier topic) or ``dead`` (a ``job.dead`` to the DLQ) for a failed
    one; wakes parked jobs of a limited type whose slot was freed. Returns the results
    whose lease was no longer theirs (recorded nowhere)."""
    if not results:
        return []
    with engine.begin() as connection:
        return _finish(connection, results, topics, retry_base_seconds, retry_cap_seconds, limits)


def _finish(
    connection: sa.Connection,
    results: Sequence[AttemptResult],
    topics: JobTopics,
    retry_base: float,
    retry_cap: float,
    limits: Mapping[str, TypeLimit],
) -> list[AttemptResult]:
    statuses, delays = [], []
    for r in results:
        if r.outcome == "succeeded":
            statuses.append("succeeded")
            delays.append(0.0)
        elif r.permanent or r.job.attempt >= r.job.max_attempts:
            statuses.append("dead")
            delays.append(0.0)
        else:
            statuses.append("retrying")
            delays.append(retry_delay(r.job.attempt, retry_base, retry_cap))
    updated = connection.execute(
        sa.text(
            "WITH old AS (SELECT id, lease_owner FROM jobs"
            " WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE)"
            " UPDATE jobs SET status = v.status,"
            " result = CASE WHEN v.status = 'succeeded' THEN CAST(v.result AS jsonb)"
            "   ELSE jobs.result END,"
            " last_error = coalesce(v.error, jobs.last_error),"
            " started_at = v.started_at,"
            " finished_at = CASE WHEN v.status = 'retrying' THEN NULL ELSE v.finished_at END,"
            " run_at = CASE WHEN v.status = 'retrying'"
            "   THEN now() + make_interval(secs => v.delay) ELSE jobs.run_at END,"
            " lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL,"
            " updated_at = now()"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[]),"
            "   CAST(:statuses AS text[]), CAST(:results AS text[]), CAST(:errors AS text[]),"
            "   CAST(:started AS timestamptz[]), CAST(:finished AS timestamptz[]),"
            "   CAST(:delays AS float8[]))"
            "   AS v(id, token, status, result, error, started_at, finished_at, delay), old"
            " WHERE jobs.id = v.id AND old.id = v.id AND jobs.lease_token = v.token"
            " AND jobs.status = 'running'"
            " RETURNING jobs.id, old.lease_owner AS owner, v.token"
        ),
        {
            "ids": [r.job.id for r in results],
            "tokens": [r.job.lease_token for r in results],
            "statuses": statuses,
            "results": [_json(r.result) if r.outcome == "succeeded" else None for r in results],
            "errors": [None if r.error is None else r.error[:MAX_ERROR_CHARS] for r in results],
            "started": [r.started_at for r in results],
            "finished": [r.finished_at for r in results],
            "delays": delays,
        },
    ).all()
    recorded_tokens = {row.token for row in updated}
    recorded = [
        (r, status, delay)
        for r, status, delay in zip(results, statuses, delays, strict=True)
        if r.job.lease_token in recorded_tokens
    ]
    stale = [r for r in results if r.job.lease_token not in recorded_tokens]
    if not recorded:
        return stale
    worker_of = {row.token: row.owner for row in updated}
    connection.execute(
        sa.insert(attempts),
        [
            {
                "job_id": r.job.id,
                "lease_token": r.job.lease_token,
                "attempt": r.job.attempt,
                "worker": worker_of.get(r.job.lease_token) or "unknown",
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "outcome": r.outcome,
                "error": None if r.error is None else r.error[:MAX_ERROR_CHARS],
            }
            for r, _, _ in recorded
        ],
    )
    _write_outcome_events(connection, recorded, topics)
    freed = {r.job.type for r, _, _ in recorded if _limited(limits, r.job.type)}
    for job_type in sorted(freed):
        _wake(connection, topics, job_type, limits[job_type].concurrency)
    return stale


def _write_outcome_events(
    connection: sa.Connection,
    recorded: Sequence[tuple[AttemptResult, str, float]],
    topics: JobTopics,
) -> None:
    dead_ids = [r.job.id for r, status, _ in recorded if status == "dead"]
    errors: dict[str, list[dict[str, Any]]] = {}
    if dead_ids:
        for row in connection.execute(
            sa.select(attempts)
            .where(attempts.c.job_id.in_(dead_ids))
            .order_by(attempts.c.started_at, attempts.c.lease_token)
        ):
            errors.setdefault(str(row.job_id), []).append(
                {"attempt": row.attempt, "outcome": row.outcome, "error": row.error}
            )
    now = time.time()
    out = []
    for r, status, delay in recorded:
        job = r.job
        if status == "retrying":
            not_before = now + delay
            data = {"id": job.id, "attempt": job.attempt + 1, "not_before": round(not_before, 3)}
            out.append(
                events.JobEvent(
                    _tier(topics, delay),
                    events.RETRY,
                    job.id,
                    data,
                    job.request_id,
                    job.traceparent,
                    not_before,
                )
            )
        elif status == "dead":
            data = {
                "id": job.id,
                "type": job.type,
                "attempts": job.attempt,
                "last_error": r.error,
                "errors": errors.get(job.id, []),
            }
            out.append(
                events.JobEvent(
                    topics.dead, events.DEAD, job.id, data, job.request_id, job.traceparent
                )
            )
    events.write(connection, out)


def _limited(limits: Mapping[str, TypeLimit], job_type: str) -> bool:
    limit = limits.get(job_type)
    return limit is not None and limit.concurrency is not None


def _wake(
    connection: sa.Connection, topics: JobTopics, job_type: str, concurrency: int | None
) -> int:
    """Give parked jobs of the type as many new events as it has free slots."""
    free = 1000 if concurrency is None else _free_slots(connection, job_type, concurrency)
    if free <= 0:
        return 0
    rows = connection.execute(
        sa.text(
            # MATERIALIZED: a LIMIT ... SKIP LOCKED subquery in IN may run again and
            # pick other rows; a CTE runs once, so at most :free are woken.
            "WITH chosen AS MATERIALIZED (SELECT id FROM jobs"
            " WHERE type = :type AND status = 'queued' AND parked"
            " ORDER BY seq LIMIT :free FOR UPDATE SKIP LOCKED)"
            " UPDATE jobs SET parked = false, updated_at = now() FROM chosen"
            " WHERE jobs.id = chosen.id"
            " RETURNING jobs.id, jobs.type, jobs.attempts, jobs.request_id, jobs.traceparent"
        ),
        {"type": job_type, "free": free},
    ).all()
    _announce(connection, topics, rows)
    return len(rows)


def _announce(connection: sa.Connection, topics: JobTopics, rows: Sequence[Any]) -> None:
    events.write(
        connection,
        [
            events.enqueued(
                topics.jobs, str(r.id), r.type, r.attempts + 1, r.request_id, r.traceparent
            )
            for r in rows
        ],
    )


def release(engine: sa.Engine, jobs_: Sequence[ClaimedJob], topics: JobTopics) -> int:
    """SIGTERM: ``running`` → ``queued`` (the attempt not counted) with a new event."""
    if not jobs_:
        return 0
    with engine.begin() as connection:
        rows = connection.execute(
            sa.text(
                "UPDATE jobs SET status = 'queued', attempts = jobs.attempts - 1,"
                " lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL,"
                " started_at = NULL, updated_at = now()"
                " FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS bigint[])) AS v(id, token)"
                " WHERE jobs.id = v.id AND jobs.lease_token = v.token"
                " AND jobs.status = 'running'"
                " RETURNING jobs.id, jobs.type, jobs.attempts, jobs.request_id,"
                " jobs.traceparent, v.token, jobs.started_at"
            ),
            {"ids": [j.id for j in jobs_], "tokens": [j.lease_token for j in jobs_]},
        ).all()
        _announce(connection, topics, rows)
    return len(rows)


def requeue(engine: sa.Engine, due: Sequence[tuple[str, int]], topics: JobTopics) -> int:
    """The retry-tier consumer: ``retrying`` → ``queued`` for each ``(job id, attempt)``
    still waiting for that attempt's retry (a redelivered record changes nothing)."""
    valid = [(i, a) for i, a in due if _ids([i])]
    if not valid:
        return 0
    with engine.begin() as connection:
        rows = connection.execute(
            sa.text(
                "UPDATE jobs SET status = 'queued', run_at = now(), updated_at = now()"
                " FROM unnest(CAST(:ids AS uuid[]), CAST(:next AS int[])) AS v(id, attempt)"
                " WHERE jobs.id = v.id AND jobs.status = 'retrying'"
                " AND jobs.attempts + 1 = v.attempt"
                " RETURNING jobs.id, jobs.type, jobs.attempts, jobs.request_id, jobs.traceparent"
            ),
            {"ids": [i for i, _ in valid], "next": [a for _, a in valid]},
        ).all()
        _announce(connection, topics, rows)
    return len(rows)


# -- the leader's duties: each takes a connection inside LeaderLease.transaction() ------
def promote_due(connection: sa.Connection, topics: JobTopics, limit: int = 1000) -> int:
    """``scheduled`` jobs whose ``run_at`` passed → ``queued``, with their events; and
    ``retrying`` jobs a minute past their retry time (their retry record was lost, e.g. a
    dev broker restarted) the same way."""
    rows = connection.execute(
        sa.text(
            "WITH due AS MATERIALIZED (SELECT id FROM jobs"
            "  WHERE status = 'scheduled' AND run_at <= now()"
            "  ORDER BY run_at LIMIT :limit FOR UPDATE SKIP LOCKED),"
            " lost AS MATERIALIZED (SELECT id FROM jobs WHERE status = 'retrying'"
            "  AND run_at <= now() - interval '60 seconds'"
            "  ORDER BY run_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
            " UPDATE jobs SET status = 'queued', updated_at = now()"
            " WHERE jobs.id IN (SELECT id FROM due UNION ALL SELECT id FROM lost)"
            " RETURNING jobs.id, jobs.type, jobs.attempts, jobs.request_id, jobs.traceparent"
        ),
        {"limit": limit},
    ).all()
    _announce(connection, topics, rows)
    return len(rows)


def reannounce_stale(
    connection: sa.Connection, topics: JobTopics, after_seconds: float, limit: int = 1000
) -> int:
    """``queued`` jobs unchanged for ``after_seconds`` get a new event: their message may
    be gone (an in-memory dev broker restarted). A duplicate is harmless: claim skips it."""
    rows = connection.execute(
        sa.text(
            "WITH stale AS MATERIALIZED (SELECT id FROM jobs"
            " WHERE status = 'queued' AND NOT parked"
            " AND updated_at < now() - make_interval(secs => :after)"
            " ORDER BY seq LIMIT :limit FOR UPDATE SKIP LOCKED)"
            " UPDATE jobs SET updated_at = now() FROM stale WHERE jobs.id = stale.id"
            " RETURNING jobs.id, jobs.type, jobs.attempts, jobs.request_id, jobs.traceparent"
        ),
        {"after": after_seconds, "limit": limit},
    ).all()
    _announce(connection, topics, rows)
    return len(rows)


def reap_expired(
    connection: sa.Connection,
    topics: JobTopics,
    retry_base_seconds: float,
    retry_cap_seconds: float,
    limit: int = 1000,
    limits: Mapping[str, TypeLimit] | None = None,
) -> int:
    """``running`` jobs whose lease expired: the attempt is ``lost`` (a failure)."""
    rows = connection.execute(
        sa.text(
            "SELECT id, type, payload, attempts, max_attempts, timeout_seconds, lease_token,"
            " updated_at AS queued_at, request_id, traceparent, lease_owner, started_at, now()"
            " AS now FROM jobs WHERE status = 'running' AND lease_expires_at < now()"
            " ORDER BY lease_expires_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"limit": limit},
    ).all()
    results = [
        AttemptResult(
            job=_claimed(row),
            outcome="lost",
            started_at=row.started_at or row.now,
            finished_at=row.now,
            error=f"lease expired: worker {row.lease_owner} stopped renewing it",
        )
        for row in rows
    ]
    if results:
        _finish(connection, results, topics, retry_base_seconds, retry_cap_seconds, limits or {})
    return len(results)


def wake_parked(
    connection: sa.Connection, topics: JobTopics, limits: Mapping[str, TypeLimit]
) -> int:
    """Parked jobs of each limited type, as many as it has free slots, get an event; a
    type no longer limited wakes its parked jobs (up to 1000 a call)."""
    parked_types = connection.execute(
        sa.text("SELECT DISTINCT type FROM jobs WHERE status = 'queued' AND parked")
    ).scalars()
    woken = 0
    for job_type in sorted(parked_types):
        limit = limits.get(job_type)
        woken += _wake(connection, topics, job_type, limit.concurrency if limit else None)
    return woken


def fire_schedules(
    connection: sa.Connection, topics: JobTopics, max_attempts: int, timeout_seconds: int
) -> int:
    """Enqueue each due schedule's latest missed fire time once (a unique
    ``(schedule, fire time)`` row); the next fire time is the first after now."""
    due = connection.execute(
        sa.text(
            "SELECT name, cron, type, payload, next_fire_at, now() AS now FROM schedules"
            " WHERE next_fire_at <= now() ORDER BY next_fire_at FOR UPDATE SKIP LOCKED"
        )
    ).all()
    fired = 0
    for row in due:
        fire_time = max(row.next_fire_at, latest_fire_time(row.cron, row.now))
        job = NewJob(
            type=row.type,
            payload=row.payload,
            max_attempts=max_attempts,
            timeout_seconds=timeout_seconds,
            run_at=fire_time,
            idempotency_key=f"schedule:{row.name}:{fire_time.isoformat()}",
            schedule_name=row.name,
        )
        job_row, created = insert_job(connection, job, topics, None)
        # The unique (schedule, fire time) row: a second enqueue of this run is impossible.
        inserted = connection.execute(
            sa.text(
                "INSERT INTO schedule_runs (schedule_name, fire_time, job_id)"
                " VALUES (:name, :fire_time, :job_id) ON CONFLICT DO NOTHING"
            ),
            {"name": row.name, "fire_time": fire_time, "job_id": job_row.id},
        ).rowcount
        fired += int(created and inserted == 1)
        connection.execute(
            sa.text(
                "UPDATE schedules SET next_fire_at = :next, updated_at = now() WHERE name = :n"
            ),
            {"next": next_fire_time(row.cron, row.now), "n": row.name},
        )
    return fired


def prune_finished(connection: sa.Connection, keep_seconds: float, limit: int = 5000) -> int:
    """Delete ``succeeded`` and ``cancelled`` jobs (with their attempts) finished more
    than ``keep_seconds`` ago, and schedule runs as old; ``dead`` jobs stay until replayed."""
    deleted = connection.execute(
        sa.text(
            "WITH old AS MATERIALIZED (SELECT id FROM jobs"
            " WHERE status IN ('succeeded', 'cancelled')"
            " AND finished_at < now() - make_interval(secs => :keep) LIMIT :limit)"
            " DELETE FROM jobs USING old WHERE jobs.id = old.id"
        ),
        {"keep": keep_seconds, "limit": limit},
    ).rowcount
    connection.execute(
        sa.text("DELETE FROM schedule_runs WHERE fire_time < now() - make_interval(secs => :keep)"),
        {"keep": keep_seconds},
    )
    return int(deleted)
