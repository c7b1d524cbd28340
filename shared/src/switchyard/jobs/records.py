"""What the jobs store hands out: plain frozen records, no ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["scheduled", "queued", "running", "retrying", "succeeded", "dead", "cancelled"]
STATUSES: tuple[Status, ...] = (
    "scheduled",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "dead",
    "cancelled",
)
AttemptOutcome = Literal["succeeded", "failed", "timed_out", "lost", "interrupted"]


@dataclass(frozen=True)
class NewJob:
    """A validated enqueue request (the payload already passed its type's model)."""

    type: str
    payload: dict[str, Any]
    max_attempts: int
    timeout_seconds: int
    run_at: datetime | None = None  # None: now (or delay_seconds from now)
    delay_seconds: float | None = None  # from PostgreSQL's now(), the clock due times use
    idempotency_key: str | None = None
    schedule_name: str | None = None


@dataclass(frozen=True)
class Job:
    id: str
    seq: int  # insertion order: the list cursor
    type: str
    payload: Any
    status: Status
    attempts: int
    max_attempts: int
    timeout_seconds: int
    last_error: str | None
    result: Any
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    idempotency_key: str | None
    schedule_name: str | None


@dataclass(frozen=True)
class Attempt:
    job_id: str
    attempt: int
    worker: str
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    error: str | None


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    type: str
    payload: Any
    next_fire_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class JobStats:
    """``GET /admin/jobs`` without the Kafka part (lag is the caller's)."""

    counts: dict[str, dict[str, int]]  # type -> status -> jobs
    dead: int
    oldest_queued_age_seconds: float | None
    parked: int


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker now runs under ``lease_token``; nobody else can finish it."""

    id: str
    type: str
    payload: Any
    attempt: int  # 1 for the first
    max_attempts: int
    timeout_seconds: int
    lease_token: int
    queued_at: datetime  # when it became ready: queue-wait latency starts here
    request_id: str | None
    traceparent: str | None
    # Seconds to wait before starting: the job's slot of its type's rate limit.
    start_delay: float = 0.0


@dataclass(frozen=True)
class AttemptResult:
    """How one attempt ended, as the worker reports it to :func:`~.lifecycle.finish`."""

    job: ClaimedJob
    outcome: AttemptOutcome
    started_at: datetime
    finished_at: datetime
    result: Any = None
    error: str | None = None
    # The job can never succeed (a URL the SSRF guard refuses, ...): dead now, no retry.
    permanent: bool = False


@dataclass(frozen=True)
class TypeLimit:
    """Cluster-wide limits of one job type (``JOBS__LIMITS``); None: unlimited."""

    concurrency: int | None = None
    rate_per_second: float | None = None


@dataclass(frozen=True)
class JobTopics:
    """The (prefixed) topic names the state changes publish to, through the outbox."""

    jobs: str
    retry_tiers: tuple[tuple[str, float], ...]  # (topic, delay seconds), shortest first
    dead: str
    extra: dict[str, str] = field(default_factory=dict)
