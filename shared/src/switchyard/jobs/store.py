"""The API's side of jobs and schedules: enqueue, read, cancel, retry, replay, stats.

Guarantee: a job row and its ``job.enqueued`` event are written in one transaction
(outbox), so there is never a job without its message nor a message without its job;
every state change checks the state it leaves, so racing callers change a job once.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from switchyard.jobs.records import Attempt, Job, JobStats, JobTopics, NewJob, Schedule


class JobStateConflict(Exception):
    """The job is not in a state the operation applies to (HTTP 409)."""

    def __init__(self, job: Job, wanted: str) -> None:
        super().__init__(f"job {job.id} is {job.status}; only a job that is {wanted} can be")
        self.job = job


class ScheduleExists(Exception):
    """A schedule with this name exists (HTTP 409)."""


def enqueue(
    engine: sa.Engine, job: NewJob, topics: JobTopics, request_id: str | None = None
) -> tuple[Job, bool]:
    """Store ``job`` (``scheduled`` when ``run_at`` is in the future, else ``queued`` with
    its event); returns ``(job, created)``. A repeated ``idempotency_key`` returns the
    existing job and ``created=False``, whatever the rest of the request says."""
    raise NotImplementedError


def get_job(engine: sa.Engine, job_id: str) -> Job | None:
    raise NotImplementedError


def list_jobs(
    engine: sa.Engine,
    *,
    status: str | None,
    job_type: str | None,
    before_seq: int | None,
    limit: int,
) -> list[Job]:
    """Newest first, at most ``limit`` rows with ``seq < before_seq`` (the cursor)."""
    raise NotImplementedError


def list_attempts(engine: sa.Engine, job_id: str) -> list[Attempt]:
    """Every finished attempt of the job, oldest first."""
    raise NotImplementedError


def cancel(engine: sa.Engine, job_id: str) -> Job | None:
    """``scheduled | queued | retrying`` → ``cancelled``; None if there is no such job;
    :class:`JobStateConflict` for any other status."""
    raise NotImplementedError


def retry(
    engine: sa.Engine, job_id: str, topics: JobTopics, request_id: str | None = None
) -> Job | None:
    """``dead | cancelled`` → ``queued`` with a fresh attempt budget (the ``max_attempts``
    it was enqueued with) and its event; None if no such job; :class:`JobStateConflict`."""
    raise NotImplementedError


def replay_dead(
    engine: sa.Engine, job_type: str | None, limit: int, topics: JobTopics
) -> list[str]:
    """:func:`retry` for up to ``limit`` dead jobs (of ``job_type``), oldest first; the ids."""
    raise NotImplementedError


def job_stats(engine: sa.Engine) -> JobStats:
    raise NotImplementedError


def validate_cron(expression: str) -> None:
    """ValueError naming what is wrong with a five-field cron expression."""
    raise NotImplementedError


def create_schedule(
    engine: sa.Engine, name: str, cron: str, job_type: str, payload: dict[str, object]
) -> Schedule:
    """:class:`ScheduleExists` if the name is taken; the first fire time is the next one
    after now."""
    raise NotImplementedError


def list_schedules(engine: sa.Engine, *, after_name: str | None, limit: int) -> list[Schedule]:
    """Ordered by name, at most ``limit`` with ``name > after_name`` (the cursor)."""
    raise NotImplementedError


def get_schedule(engine: sa.Engine, name: str) -> Schedule | None:
    raise NotImplementedError


def delete_schedule(engine: sa.Engine, name: str) -> bool:
    raise NotImplementedError


def now(engine: sa.Engine) -> datetime:
    """PostgreSQL's clock: every due time is compared with it, never a process's."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.now())).scalar_one()
