"""Retry topics with delay tiers: a failing record moves on instead of blocking its partition.

Guarantee: a record is committed away from a topic only after its copy was confirmed on
the next tier's topic (or the dead-letter topic after the last tier); a dependency
outage never moves a record (it is retried in place, as by the default policy).

The path of a record that keeps failing, for tiers ``retry-5s`` and ``retry-1m``::

    jobs --fails--> jobs.retry-5s --fails--> jobs.retry-1m --fails--> jobs.dlq

Each tier topic has its own runner (its own group, e.g. ``<group>-retry-5s``) with the
same handler and this policy: a record there carries ``retry-not-before`` and the
runner waits for it with its partitions paused, still serving the group. One runner
per tier keeps a long delay from holding up the main topic or a shorter tier. The
tier topics (and ``jobs.dlq``) must exist, like every other topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from switchyard.errors import PermanentError
from switchyard.events import InvalidEvent
from switchyard.kafka.deadletter import Publisher, failure_headers
from switchyard.kafka.policy import Outcome, RetryInPlaceThenDeadLetter, RunnerControls
from switchyard.kafka.producer import OutgoingRecord
from switchyard.kafka.records import BatchHandler, ConsumedEvent
from switchyard.kafka.topics import dlq_name

TIER_HEADER = "retry-tier"  # the index of the tier the record is in
NOT_BEFORE_HEADER = "retry-not-before"  # Unix seconds
ORIGIN_HEADER = "retry-original-topic"


@dataclass(frozen=True)
class RetryTier:
    suffix: str  # "retry-5s": the tier's topic is "<original topic>.retry-5s"
    delay_seconds: float


def tier_topics(topic: str, tiers: Sequence[RetryTier]) -> list[str]:
    """The tier topics of ``topic``, to create and to run a consumer for, in order."""
    return [f"{topic}.{tier.suffix}" for tier in tiers]


class ForwardToRetryTopic(RetryInPlaceThenDeadLetter):
    """Handle a record once (alone, if its batch failed); if it fails, forward it.

    Transient failures are retried in place with backoff, as by the default policy;
    :class:`PermanentError` and :class:`InvalidEvent` skip the tiers for the DLQ.
    """

    def __init__(
        self,
        producer: Publisher,
        tiers: Sequence[RetryTier],
        backoff_base_seconds: float = 0.2,
        backoff_cap_seconds: float = 30.0,
    ) -> None:
        super().__init__(1, backoff_base_seconds, backoff_cap_seconds)
        self.producer = producer
        self.tiers = list(tiers)

    def handle(
        self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
    ) -> Outcome:
        if not wait_until_due(events, runner, header_not_before):
            return Outcome.LEAVE_UNCOMMITTED
        return super().handle(events, handler, runner)

    def undecodable(
        self, event: ConsumedEvent, error: InvalidEvent, runner: RunnerControls
    ) -> None:
        self.give_up(event, error, runner)  # to the original topic's DLQ

    def give_up(self, event: ConsumedEvent, error: Exception, runner: RunnerControls) -> None:
        origin = event.headers.get(ORIGIN_HEADER, event.topic)
        tier = int(_number(event, TIER_HEADER, -1)) + 1
        if tier >= len(self.tiers) or isinstance(error, PermanentError | InvalidEvent):
            runner.dead_letter(event, error, dlq_name(origin))
            return
        headers = [
            (k, v)
            for k, v in failure_headers(event, error, runner.group_id)
            if k not in (TIER_HEADER, NOT_BEFORE_HEADER, ORIGIN_HEADER)
        ] + [
            (TIER_HEADER, str(tier).encode()),
            (NOT_BEFORE_HEADER, f"{time.time() + self.tiers[tier].delay_seconds:.3f}".encode()),
            (ORIGIN_HEADER, origin.encode()),
        ]
        topic = tier_topics(origin, self.tiers)[tier]
        self.producer.publish([OutgoingRecord(topic, event.value, event.key, headers)])


def header_not_before(event: ConsumedEvent) -> float:
    """The record's ``retry-not-before`` header (Unix seconds); 0 (due) without one."""
    return _number(event, NOT_BEFORE_HEADER, 0.0)


def wait_until_due(
    events: Sequence[ConsumedEvent],
    runner: RunnerControls,
    not_before: Callable[[ConsumedEvent], float],
) -> bool:
    """Hold the batch until the latest ``not_before`` (Unix seconds) of its records, the
    partitions paused and the group still served; False, at once, if a stop came first
    (the batch is then left uncommitted for the next member)."""
    wait = max(not_before(e) for e in events) - time.time()
    return wait <= 0 or runner.pause_for(wait)


def _number(event: ConsumedEvent, header: str, default: float) -> float:
    try:
        return float(event.headers.get(header, default))
    except ValueError:
        return default
