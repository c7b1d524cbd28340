"""Dead-lettering: a record that can never succeed goes to ``<topic>.dlq``, error attached.

Guarantee: :meth:`DeadLetters.publish` returns only once the broker confirmed the copy
(the producer confirms every publish, or raises), so a policy may commit the original
right after. The copy keeps the original key, value and headers and adds ``dlq-*``
headers saying what failed, where the record came from, which group gave up, and when.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from switchyard import metrics
from switchyard.kafka.producer import OutgoingRecord
from switchyard.kafka.records import ConsumedEvent
from switchyard.kafka.topics import dlq_name
from switchyard.logging import get_logger

log = get_logger(__name__)


class Publisher(Protocol):
    """Publishes records and returns once they are confirmed (an ``EventProducer``)."""

    def publish(self, records: Sequence[OutgoingRecord], timeout: float | None = None) -> None: ...


def failure_headers(
    record: ConsumedEvent, error: BaseException, group_id: str
) -> list[tuple[str, bytes]]:
    """The original headers plus what failed, where and when (also for retry topics).

    ``dlq-*`` headers of an earlier failure (a record from a retry topic) are replaced.
    """
    return [(k, v.encode()) for k, v in record.headers.items() if not k.startswith("dlq-")] + [
        ("dlq-error", f"{error}"[:2000].encode()),
        ("dlq-error-type", type(error).__name__.encode()),
        ("dlq-original-topic", record.topic.encode()),
        ("dlq-original-partition", str(record.partition).encode()),
        ("dlq-original-offset", str(record.offset).encode()),
        ("dlq-consumer-group", group_id.encode()),
        ("dlq-failed-at", datetime.now(UTC).isoformat().encode()),
    ]


class DeadLetters:
    """Publishes one consumer group's given-up records to their topic's DLQ."""

    def __init__(self, producer: Publisher, group_id: str) -> None:
        self._producer = producer
        self.group_id = group_id

    def publish(
        self, record: ConsumedEvent, error: BaseException, topic: str | None = None
    ) -> None:
        """To ``topic``, by default ``<record's topic>.dlq``."""
        headers = failure_headers(record, error, self.group_id)
        self._producer.publish(
            [OutgoingRecord(topic or dlq_name(record.topic), record.value, record.key, headers)]
        )
        metrics.dead_letters_total.labels(record.topic).inc()
        metrics.events_consumed_total.labels(record.topic, self.group_id, "dead_lettered").inc()
        log.error(
            "record dead-lettered",
            group=self.group_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=f"{error}"[:500],
            error_type=type(error).__name__,
        )
