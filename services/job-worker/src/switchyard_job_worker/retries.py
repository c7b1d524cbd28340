"""The retry tiers: a failed attempt's ``job.retry`` waits in its tier until due, then
the job is queued again.

Guarantee: a ``job.retry`` record is committed only after :func:`~switchyard.jobs.
lifecycle.requeue` stored ``retrying`` → ``queued`` (with its new ``job.enqueued`` in
the outbox), or found the job no longer waiting for that attempt (a redelivery, a job
cancelled meanwhile); never before its not-before time. The tier's runner waits with
its partitions paused and keeps serving its group (the shared wait of
:func:`switchyard.kafka.retry_topics.wait_until_due`), so the main topic and the other
tiers never wait for it. Each tier has its own runner and group
(``<prefix>job-worker-retry-5s``, ...): a long tier's rebalance never stops a short one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from switchyard.errors import PermanentError
from switchyard.kafka.policy import Outcome, RetryInPlaceThenDeadLetter, RunnerControls
from switchyard.kafka.records import BatchHandler, ConsumedEvent
from switchyard.kafka.retry_topics import NOT_BEFORE_HEADER, header_not_before, wait_until_due

JOB_RETRY = "job.retry"
Requeue = Callable[[Sequence[tuple[str, int]]], int]


def retry_of(event: ConsumedEvent) -> tuple[str, int] | None:
    """``(job id, attempt)`` of a ``job.retry``; None for another event type."""
    cloud_event = event.event
    if cloud_event.type != JOB_RETRY:
        return None
    data = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    raw_id, attempt = data.get("id"), data.get("attempt")
    try:
        job_id = str(uuid.UUID(raw_id)) if isinstance(raw_id, str) else None
    except ValueError:
        job_id = None
    if job_id is None or isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise PermanentError("job.retry without a valid data.id and data.attempt")
    return job_id, attempt


def not_before(event: ConsumedEvent, tier_delay_seconds: float) -> float:
    """When the record is due (Unix seconds): its ``retry-not-before`` header, else its
    ``data.not_before`` (seconds or RFC 3339); never later than the tier's delay after
    the record was written, so a wrong value cannot hold a partition for longer."""
    due = header_not_before(event) if NOT_BEFORE_HEADER in event.headers else _data_due(event)
    if event.timestamp_ms > 0:
        due = min(due, event.timestamp_ms / 1000 + tier_delay_seconds)
    return due


def _data_due(event: ConsumedEvent) -> float:
    data = event.event.data
    value = data.get("not_before") if isinstance(data, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return 0.0  # due now; the handler decides whether the record is any good


class RetryTierPolicy(RetryInPlaceThenDeadLetter):
    """The default policy for each record once it is due: the records of a batch are
    handled in the order they fall due, none held for a later one (a tier mixes delays:
    the 10-minute tier holds every backoff between one and ten minutes)."""

    def __init__(self, tier_delay_seconds: float, max_attempts: int = 3) -> None:
        super().__init__(max_attempts)
        self.tier_delay = tier_delay_seconds

    def handle(
        self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
    ) -> Outcome:
        due = {id(e): not_before(e, self.tier_delay) for e in events}
        pending = sorted(events, key=lambda e: due[id(e)])
        while pending:
            if not wait_until_due(pending[:1], runner, lambda e: due[id(e)]):
                return Outcome.LEAVE_UNCOMMITTED  # what was requeued stays so: idempotent
            now = time.time()
            ready = [e for e in pending if due[id(e)] <= now]
            pending = pending[len(ready) :]
            if super().handle(ready, handler, runner) is Outcome.LEAVE_UNCOMMITTED:
                return Outcome.LEAVE_UNCOMMITTED
        return Outcome.COMMIT


class Requeuer:
    """The batch handler of a tier: one :func:`requeue` for the batch's jobs."""

    def __init__(self, requeue: Requeue) -> None:
        self._requeue = requeue

    def __call__(self, events: list[ConsumedEvent]) -> None:
        due = list(dict.fromkeys(r for e in events if (r := retry_of(e)) is not None))
        if due:
            self._requeue(due)
