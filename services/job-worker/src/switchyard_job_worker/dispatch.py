"""From ``job.enqueued`` records to claimed jobs in the pool.

Guarantee: an offset of the ``jobs`` topic is committed only after the claim of its job
is stored (or the job was not claimable: a duplicate message, a cancelled or finished
job, one parked by its type's concurrency limit or moved to its rate-limit slot, which
the SQL records), so every enqueued job is claimed at least once and, the claim being
one state change from ``queued``, run by one worker at a time. The consumer never waits
for a job to finish: while the pool is full it pauses its partitions and keeps polling
(:meth:`~switchyard.kafka.policy.RunnerControls.pause_until`), so a job that runs for
an hour causes no rebalance. A record that is not a ``job.enqueued`` with a job id goes
to ``jobs.dlq`` (the default policy's :class:`~switchyard.errors.PermanentError` path);
other event types are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from switchyard.errors import PermanentError
from switchyard.jobs.records import ClaimedJob
from switchyard.kafka.policy import Outcome, RetryInPlaceThenDeadLetter, RunnerControls
from switchyard.kafka.records import BatchHandler, ConsumedEvent
from switchyard.logging import get_logger

log = get_logger(__name__)

JOB_ENQUEUED = "job.enqueued"
Claim = Callable[[Sequence[str]], list[ClaimedJob]]


def enqueued_job_id(event: ConsumedEvent) -> str | None:
    """The job a ``job.enqueued`` names; None for another event type."""
    cloud_event = event.event
    if cloud_event.type != JOB_ENQUEUED:
        return None
    data = cloud_event.data
    raw = data.get("id") if isinstance(data, dict) else None
    if isinstance(raw, str):
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            pass
    raise PermanentError(f"job.enqueued without a valid data.id (got {str(raw)[:80]!r})")


class Dispatcher:
    """The batch handler: one claim for the batch's jobs, then hand them to the pool."""

    def __init__(self, claim: Claim, submit: Callable[[Sequence[ClaimedJob]], None]) -> None:
        self._claim = claim
        self._submit = submit

    def __call__(self, events: list[ConsumedEvent]) -> None:
        ids = list(dict.fromkeys(i for e in events if (i := enqueued_job_id(e)) is not None))
        if not ids:
            return
        claimed = self._claim(ids)
        if claimed:
            self._submit(claimed)
        if len(claimed) < len(ids):
            log.debug("jobs not claimed", asked=len(ids), claimed=len(claimed))


class DispatchPolicy(RetryInPlaceThenDeadLetter):
    """The default policy, after waiting for room in the pool."""

    def __init__(self, has_room: Callable[[], bool], max_attempts: int = 3) -> None:
        super().__init__(max_attempts)
        self.has_room = has_room

    def handle(
        self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
    ) -> Outcome:
        if not self.has_room():
            runner.pause_until(lambda: self.has_room() or runner.stopping)
        if runner.stopping:
            return Outcome.LEAVE_UNCOMMITTED  # not claimed: the next member claims them
        return super().handle(events, handler, runner)
