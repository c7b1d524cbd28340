"""Failure policies: what happens to a batch whose handler raised.

Guarantee (every policy): :meth:`FailurePolicy.handle` returns ``Outcome.COMMIT`` only
once each record of the batch was handled, or deliberately handed elsewhere with a
confirmed publish (a DLQ, a retry topic), or belongs to a partition this member lost.
Anything else returns ``Outcome.LEAVE_UNCOMMITTED``, and the group redelivers the batch.

A policy sees the runner only through :class:`RunnerControls`: pause and keep serving
the group (for a delay, or until work running elsewhere is done), dead-letter,
is-still-assigned, is-stopping. It gets the handler already wrapped in middleware. A new
policy is a subclass; the loop does not change. :class:`RetryInPlaceThenDeadLetter` has
two hooks: :meth:`~RetryInPlaceThenDeadLetter.give_up` (where a record goes that will not
succeed: the DLQ) and :meth:`~RetryInPlaceThenDeadLetter.delay` (the backoff). Retry
topics with delay tiers (:mod:`switchyard.kafka.retry_topics`) override ``give_up`` to
forward to the next tier, and ``handle`` to wait for a record's not-before first::

    class ForwardToRetryTopic(RetryInPlaceThenDeadLetter):
        def handle(self, events, handler, runner):
            wait = max(not_before(e) for e in events) - time.time()
            if wait > 0 and not runner.pause_for(wait):   # paused, group still served
                return Outcome.LEAVE_UNCOMMITTED
            return super().handle(events, handler, runner)

        def give_up(self, event, error, runner):
            ... publish to the next tier's topic, or runner.dead_letter(...) after the last

Work that may outlast ``max.poll.interval.ms`` runs in a thread while the policy calls
``runner.pause_until(future.done)``.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from switchyard.backoff import backoff_delay
from switchyard.errors import PermanentError, is_transient
from switchyard.events import InvalidEvent
from switchyard.kafka.records import BatchHandler, ConsumedEvent
from switchyard.logging import get_logger

log = get_logger(__name__)


class Outcome(enum.Enum):
    COMMIT = "commit"  # every record is settled: commit the batch (its assigned part)
    LEAVE_UNCOMMITTED = "leave uncommitted"  # stopping: the next member redoes the batch


class RunnerControls(Protocol):
    """The runner's capabilities a policy may use, and nothing else."""

    @property
    def group_id(self) -> str: ...

    @property
    def stopping(self) -> bool:
        """True once a stop was requested (SIGTERM)."""

    def pause_for(self, seconds: float) -> bool:
        """Pause the assigned partitions and keep serving the group (heartbeats,
        rebalances) for ``seconds``; False, at once, if a stop was requested."""

    def pause_until(self, done: Callable[[], bool]) -> None:
        """The same until ``done()`` (work running elsewhere); a stop does not cut it."""

    def is_assigned(self, event: ConsumedEvent) -> bool:
        """False once the record's partition moved to another member (it redoes it)."""

    def dead_letter(
        self, event: ConsumedEvent, error: BaseException, topic: str | None = None
    ) -> None:
        """Publish to ``topic`` (default ``<its topic>.dlq``) with the error in its
        headers; confirmed on return."""


class FailurePolicy(ABC):
    """Runs a batch through the handler and decides what a failure means."""

    @abstractmethod
    def handle(
        self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
    ) -> Outcome:
        """Call ``handler`` (middleware already around it) until the batch is settled."""

    def undecodable(
        self, event: ConsumedEvent, error: InvalidEvent, runner: RunnerControls
    ) -> None:
        """A record that is not a CloudEvent (``decode=True``): never retried."""
        runner.dead_letter(event, error)


class RetryInPlaceThenDeadLetter(FailurePolicy):
    """The default: retry while a dependency is down, dead-letter what is bad.

    * a dependency is down (:func:`switchyard.errors.is_transient`): the same batch is
      retried with backoff, the partitions paused, for as long as it takes;
    * anything else: the batch is split and each record retried alone; a record that
      still fails after ``max_attempts`` (or raises :class:`PermanentError` or
      :class:`InvalidEvent`) is dead-lettered, and the runner goes on.
    """

    def __init__(
        self,
        max_attempts: int = 3,
        backoff_base_seconds: float = 0.2,
        backoff_cap_seconds: float = 30.0,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base_seconds
        self.backoff_cap = backoff_cap_seconds

    def delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt``: exponential, full jitter."""
        return backoff_delay(attempt, self.backoff_base, self.backoff_cap)

    def give_up(self, event: ConsumedEvent, error: Exception, runner: RunnerControls) -> None:
        """Where a record goes that will not succeed here: the dead-letter topic."""
        runner.dead_letter(event, error)

    def handle(
        self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
    ) -> Outcome:
        attempt = 0
        while True:
            events = [e for e in events if runner.is_assigned(e)]
            if not events:
                return Outcome.COMMIT  # partitions moved to another member; it redoes them
            try:
                handler(events)
                return Outcome.COMMIT
            except Exception as exc:
                if not is_transient(exc):
                    return self._one_by_one(events, exc, handler, runner)
                attempt += 1
                delay = self.delay(attempt)
                log.warning(
                    "dependency failed; retrying batch",
                    group=runner.group_id,
                    error=f"{type(exc).__name__}: {exc}"[:500],
                    attempt=attempt,
                    retry_in=round(delay, 3),
                    records=len(events),
                )
                if not runner.pause_for(delay):
                    return Outcome.LEAVE_UNCOMMITTED

    def _one_by_one(
        self,
        events: list[ConsumedEvent],
        batch_error: Exception,
        handler: BatchHandler,
        runner: RunnerControls,
    ) -> Outcome:
        if len(events) > 1:
            log.warning(
                "batch failed; isolating the bad record",
                group=runner.group_id,
                error=f"{type(batch_error).__name__}: {batch_error}"[:500],
                records=len(events),
            )
        for event in events:
            attempt = 1
            error: Exception = batch_error
            while True:
                if len(events) > 1 or attempt > 1:
                    try:
                        handler([event])
                        break
                    except Exception as exc:
                        error = exc
                if runner.stopping and is_transient(error):
                    return Outcome.LEAVE_UNCOMMITTED
                if isinstance(error, PermanentError | InvalidEvent) or (
                    not is_transient(error) and attempt >= self.max_attempts
                ):
                    self.give_up(event, error, runner)
                    break
                attempt += 1
                if not runner.pause_for(self.delay(attempt)):
                    return Outcome.LEAVE_UNCOMMITTED
        return Outcome.COMMIT
