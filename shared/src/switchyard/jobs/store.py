"""The API's side of jobs and schedules: enqueue, read, cancel, retry, replay, stats.

Guarantee: a job row and its ``job.enqueued`` event are written in one transaction
(outbox), so there is never a job without its message nor a message without its job;
every state change checks the state it leaves, so racing callers change a job once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from sqlalchemy.dialects import postgresql as pg

from switchyard import tracing
from switchyard.db.models import jobs as models
from switchyard.jobs import events
from switchyard.jobs.records import Attempt, Job, JobStats, JobTopics, NewJob, Schedule

jobs = cast(sa.Table, models.Job.__table__)
attempts = cast(sa.Table, models.JobAttempt.__table__)
schedules = cast(sa.Table, models.JobSchedule.__table__)
_JOB_COLUMNS = [
    jobs.c[name]
    for name in (
        "id",
        "seq",
        "type",
        "payload",
        "status",
        "attempts",
        "max_attempts",
        "timeout_seconds",
        "last_error",
        "result",
        "run_at",
        "created_at",
        "started_at",
        "finished_at",
        "idempotency_key",
        "schedule_name",
        "attempt_budget",
        "request_id",
        "traceparent",
    )
]


class JobStateConflict(Exception):
    """The job is not in a state the operation applies to (HTTP 409)."""

    def __init__(self, job: Job, wanted: str) -> None:
        super().__init__(f"job {job.id} is {job.status}; only a job that is {wanted} can be")
        self.job = job


class ScheduleExists(Exception):
    """A schedule with this name exists (HTTP 409)."""


def as_job(row: Any) -> Job:
    return Job(
        id=str(row.id),
        seq=row.seq,
        type=row.type,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        timeout_seconds=row.timeout_seconds,
        last_error=row.last_error,
        result=row.result,
        run_at=row.run_at,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        idempotency_key=row.idempotency_key,
        schedule_name=row.schedule_name,
    )


def _uuid(job_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(job_id)
    except (ValueError, AttributeError, TypeError):
        return None


def insert_job(
    connection: sa.Connection, job: NewJob, topics: JobTopics, request_id: str | None
) -> tuple[Any, bool]:
    """INSERT the job (and its event when it is due now) on ``connection``; a taken
    ``idempotency_key`` inserts nothing and returns the existing row."""
    run_at: Any = job.run_at if job.run_at is not None else sa.func.now()
    if job.delay_seconds:
        run_at = sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, job.delay_seconds)
    traceparent = tracing.inject_headers().get(events.TRACEPARENT_HEADER)
    statement = (
        pg.insert(jobs)
        .values(
            id=uuid.uuid4(),
            type=job.type,
            payload=job.payload,
            status=sa.case(
                (sa.cast(run_at, jobs.c.run_at.type) > sa.func.now(), "scheduled"), else_="queued"
            ),
            max_attempts=job.max_attempts,
            attempt_budget=job.max_attempts,
            timeout_seconds=job.timeout_seconds,
            idempotency_key=job.idempotency_key,
            run_at=run_at,
            schedule_name=job.schedule_name,
            request_id=request_id,
            traceparent=traceparent,
        )
        .on_conflict_do_nothing(index_elements=[jobs.c.idempotency_key])
        .returning(*_JOB_COLUMNS)
    )
    row = connection.execute(statement).one_or_none()
    if row is None:  # the key is taken (by a committed job: the INSERT waited for it)
        existing = connection.execute(
            sa.select(*_JOB_COLUMNS).where(jobs.c.idempotency_key == job.idempotency_key)
        ).one()
        return existing, False
    if row.status == "queued":
        event = events.enqueued(topics.jobs, str(row.id), row.type, 1, request_id, traceparent)
        events.write(connection, [event])
    return row, True


def enqueue(
    engine: sa.Engine, job: NewJob, topics: JobTopics, request_id: str | None = None
) -> tuple[Job, bool]:
    """Store ``job`` (``scheduled`` when ``run_at`` is in the future, else ``queued`` with
    its event); returns ``(job, created)``. A repeated ``idempotency_key`` returns the
    existing job and ``created=False``, whatever the rest of the request says."""
    with engine.begin() as connection:
        row, created = insert_job(connection, job, topics, request_id)
    return as_job(row), created


def get_job(engine: sa.Engine, job_id: str) -> Job | None:
    key = _uuid(job_id)
    if key is None:
        return None
    with engine.connect() as connection:
        row = connection.execute(sa.select(*_JOB_COLUMNS).where(jobs.c.id == key)).one_or_none()
    return as_job(row) if row is not None else None


def list_jobs(
    engine: sa.Engine,
    *,
    status: str | None,
    job_type: str | None,
    before_seq: int | None,
    limit: int,
) -> list[Job]:
    """Newest first, at most ``limit`` rows with ``seq < before_seq`` (the cursor)."""
    query = sa.select(*_JOB_COLUMNS).order_by(jobs.c.seq.desc()).limit(limit)
    if status is not None:
        query = query.where(jobs.c.status == status)
    if job_type is not None:
        query = query.where(jobs.c.type == job_type)
    if before_seq is not None:
        query = query.where(jobs.c.seq < before_seq)
    with engine.connect() as connection:
        return [as_job(row) for row in connection.execute(query)]


def list_attempts(engine: sa.Engine, job_id: str) -> list[Attempt]:
    """Every finished attempt of the job, oldest first."""
    key = _uuid(job_id)
    if key is None:
        return []
    query = (
        sa.select(attempts)
        .where(attempts.c.job_id == key)
        .order_by(attempts.c.started_at, attempts.c.lease_token)
    )
    with engine.connect() as connection:
        return [
            Attempt(
                job_id=str(row.job_id),
                attempt=row.attempt,
                worker=row.worker,
                started_at=row.started_at,
                finished_at=row.finished_at,
                outcome=row.outcome,
                error=row.error,
            )
            for row in connection.execute(query)
        ]


def cancel(engine: sa.Engine, job_id: str) -> Job | None:
    """``scheduled | queued | retrying`` → ``cancelled``; None if there is no such job;
    :class:`JobStateConflict` for any other status."""
    key = _uuid(job_id)
    if key is None:
        return None
    with engine.begin() as connection:
        row = connection.execute(
            sa.update(jobs)
            .where(jobs.c.id == key, jobs.c.status.in_(("scheduled", "queued", "retrying")))
            .values(
                status="cancelled",
                parked=False,
                finished_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
            .returning(*_JOB_COLUMNS)
        ).one_or_none()
    if row is not None:
        return as_job(row)
    current = get_job(engine, job_id)
    if current is None:
        return None
    raise JobStateConflict(current, "scheduled, queued or retrying")


def _requeue_for_retry(connection: sa.Connection, where: Any, topics: JobTopics) -> list[Any]:
    rows = connection.execute(
        sa.update(jobs)
        .where(where)
        .values(
            status="queued",
            max_attempts=jobs.c.attempts + jobs.c.attempt_budget,
            parked=False,
            finished_at=None,
            run_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
        .returning(*_JOB_COLUMNS)
    ).all()
    events.write(
        connection,
        [
            events.enqueued(
                topics.jobs, str(r.id), r.type, r.attempts + 1, r.request_id, r.traceparent
            )
            for r in rows
        ],
    )
    return list(rows)


def retry(
    engine: sa.Engine, job_id: str, topics: JobTopics, request_id: str | None = None
) -> Job | None:
    """``dead | cancelled`` → ``queued`` with a fresh attempt budget (the ``max_attempts``
    it was enqueued with) and its event; None if no such job; :class:`JobStateConflict`."""
    key = _uuid(job_id)
    if key is None:
        return None
    with engine.begin() as connection:
        rows = _requeue_for_retry(
            connection, sa.and_(jobs.c.id == key, jobs.c.status.in_(("dead", "cancelled"))), topics
        )
    if rows:
        return as_job(rows[0])
    current = get_job(engine, job_id)
    if current is None:
        return None
    raise JobStateConflict(current, "dead or cancelled")


def replay_dead(
    engine: sa.Engine, job_type: str | None, limit: int, topics: JobTopics
) -> list[str]:
    """:func:`retry` for up to ``limit`` dead jobs (of ``job_type``), oldest first; the ids."""
    chosen = sa.select(jobs.c.id).where(jobs.c.status == "dead")
    if job_type is not None:
        chosen = chosen.where(jobs.c.type == job_type)
    # Chosen first, in a statement of their own: a LIMIT ... SKIP LOCKED subquery inside
    # the UPDATE may run again and pick more rows than the limit.
    chosen = chosen.order_by(jobs.c.seq).limit(limit).with_for_update(skip_locked=True)
    with engine.begin() as connection:
        ids = list(connection.execute(chosen).scalars())
        rows = _requeue_for_retry(
            connection, sa.and_(jobs.c.id.in_(ids), jobs.c.status == "dead"), topics
        )
    return [str(row.id) for row in sorted(rows, key=lambda r: r.seq)]


def job_stats(engine: sa.Engine) -> JobStats:
    with engine.connect() as connection:
        counts: dict[str, dict[str, int]] = {}
        for job_type, status, n in connection.execute(
            sa.select(jobs.c.type, jobs.c.status, sa.func.count()).group_by(
                jobs.c.type, jobs.c.status
            )
        ):
            counts.setdefault(job_type, {})[status] = n
        oldest, parked = connection.execute(
            sa.select(
                sa.func.extract("epoch", sa.func.now() - sa.func.min(jobs.c.updated_at)),
                sa.func.count().filter(jobs.c.parked),
            ).where(jobs.c.status == "queued")
        ).one()
    dead = sum(by_status.get("dead", 0) for by_status in counts.values())
    return JobStats(
        counts=counts,
        dead=dead,
        oldest_queued_age_seconds=max(0.0, float(oldest)) if oldest is not None else None,
        parked=parked,
    )


def dead_count(engine: sa.Engine) -> int:
    """Jobs ``dead`` and not replayed: the dead-letter depth (an index-only count)."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "dead")
            ).scalar_one()
        )


def validate_cron(expression: str) -> None:
    """ValueError naming what is wrong with a five-field cron expression."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month weekday); got {len(fields)}"
        )
    try:
        croniter(expression)
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
        raise ValueError(str(exc) or "not a valid cron expression") from None
    try:
        croniter(expression).get_next(datetime)
    except (CroniterBadDateError, ValueError):  # "0 0 30 2 *": a date that never comes
        raise ValueError("it never fires (no such date)") from None


def next_fire_time(expression: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after``."""
    return cast(datetime, croniter(expression, after).get_next(datetime))


def latest_fire_time(expression: str, at_or_before: datetime) -> datetime:
    """The last fire time at or before ``at_or_before``."""
    start = at_or_before + timedelta(microseconds=1)
    return cast(datetime, croniter(expression, start).get_prev(datetime))


def _as_schedule(row: Any) -> Schedule:
    return Schedule(
        name=row.name,
        cron=row.cron,
        type=row.type,
        payload=row.payload,
        next_fire_at=row.next_fire_at,
        created_at=row.created_at,
    )


def create_schedule(
    engine: sa.Engine, name: str, cron: str, job_type: str, payload: dict[str, object]
) -> Schedule:
    """:class:`ScheduleExists` if the name is taken; the first fire time is the next one
    after now."""
    validate_cron(cron)
    with engine.begin() as connection:
        db_now = connection.execute(sa.select(sa.func.now())).scalar_one()
        row = connection.execute(
            pg.insert(schedules)
            .values(
                name=name,
                cron=cron,
                type=job_type,
                payload=payload,
                next_fire_at=next_fire_time(cron, db_now),
            )
            .on_conflict_do_nothing(index_elements=[schedules.c.name])
            .returning(schedules)
        ).one_or_none()
    if row is None:
        raise ScheduleExists(f"a schedule named {name!r} exists; DELETE it first to replace it")
    return _as_schedule(row)


def list_schedules(engine: sa.Engine, *, after_name: str | None, limit: int) -> list[Schedule]:
    """Ordered by name, at most ``limit`` with ``name > after_name`` (the cursor)."""
    query = sa.select(schedules).order_by(schedules.c.name).limit(limit)
    if after_name is not None:
        query = query.where(schedules.c.name > after_name)
    with engine.connect() as connection:
        return [_as_schedule(row) for row in connection.execute(query)]


def get_schedule(engine: sa.Engine, name: str) -> Schedule | None:
    with engine.connect() as connection:
        row = connection.execute(sa.select(schedules).where(schedules.c.name == name)).one_or_none()
    return _as_schedule(row) if row is not None else None


def delete_schedule(engine: sa.Engine, name: str) -> bool:
    with engine.begin() as connection:
        deleted = connection.execute(sa.delete(schedules).where(schedules.c.name == name))
    return bool(deleted.rowcount)


def now(engine: sa.Engine) -> datetime:
    """PostgreSQL's clock: every due time is compared with it, never a process's."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.now())).scalar_one()
