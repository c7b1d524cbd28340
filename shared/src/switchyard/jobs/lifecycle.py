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

from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from switchyard.jobs.records import AttemptResult, ClaimedJob, JobTopics, TypeLimit


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
    raise NotImplementedError


def heartbeat(engine: sa.Engine, tokens: Sequence[int], lease_seconds: float) -> set[int]:
    """Extend the leases; returns the tokens still held (a missing one: stop that job)."""
    raise NotImplementedError


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
    raise NotImplementedError


def release(engine: sa.Engine, jobs: Sequence[ClaimedJob], topics: JobTopics) -> int:
    """SIGTERM: ``running`` → ``queued`` (the attempt not counted) with a new event."""
    raise NotImplementedError


def requeue(engine: sa.Engine, due: Sequence[tuple[str, int]], topics: JobTopics) -> int:
    """The retry-tier consumer: ``retrying`` → ``queued`` for each ``(job id, attempt)``
    still waiting for that attempt's retry (a redelivered record changes nothing)."""
    raise NotImplementedError


# -- the leader's duties: each takes a connection inside LeaderLease.transaction() ------
def promote_due(connection: sa.Connection, topics: JobTopics, limit: int = 1000) -> int:
    """``scheduled`` jobs whose ``run_at`` passed → ``queued``, with their events."""
    raise NotImplementedError


def reap_expired(
    connection: sa.Connection,
    topics: JobTopics,
    retry_base_seconds: float,
    retry_cap_seconds: float,
    limit: int = 1000,
) -> int:
    """``running`` jobs whose lease expired: the attempt is ``lost`` (a failure)."""
    raise NotImplementedError


def wake_parked(
    connection: sa.Connection, topics: JobTopics, limits: Mapping[str, TypeLimit]
) -> int:
    """Parked jobs of each limited type, as many as it has free slots, get an event."""
    raise NotImplementedError


def fire_schedules(connection: sa.Connection, topics: JobTopics, max_attempts: int) -> int:
    """Enqueue each due schedule's latest missed fire time once (a unique
    ``(schedule, fire time)`` row); the next fire time is the first after now."""
    raise NotImplementedError
