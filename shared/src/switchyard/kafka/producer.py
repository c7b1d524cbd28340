"""A producer that confirms delivery: acks=all, idempotence on, and a wait for each event.

``publish`` returns only once Kafka acknowledged every record, or raises. The buffer
between callers and the broker is bounded (``KAFKA__PRODUCER_MAX_BUFFERED_MESSAGES``):
when it is full, :class:`ProducerBusy` is raised at once instead of growing memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

from confluent_kafka import KafkaError, Message, Producer

from switchyard import metrics
from switchyard.config import Settings
from switchyard.kafka.client_config import common_config
from switchyard.logging import get_logger

log = get_logger(__name__)


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record in time; none may be assumed delivered."""


class ProducerBusy(PublishError):
    """The bounded buffer to Kafka is full; retry later."""


class OutgoingRecord(NamedTuple):
    """One record to produce; a named tuple because the API builds one per event."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


class DeliveryBatch:
    """Tracks the acknowledgements of records produced together.

    The delivery callback runs once per record on the poll thread, so it only counts;
    ``events_published_total`` is incremented once per topic when the last report came.
    """

    def __init__(self, sent: dict[str, int]) -> None:
        self._sent = sent  # topic -> records produced
        self._remaining = sum(sent.values())
        self._errors: list[str] = []
        self._failed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        if self._remaining == 0:
            self._done.set()

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is not None:
                topic = message.topic() or ""
                self._errors.append(f"{topic}: {error.str()}")
                self._failed[topic] = self._failed.get(topic, 0) + 1
            self._remaining -= 1
            if self._remaining > 0:
                return
        for topic, count in self._sent.items():
            if delivered := count - self._failed.get(topic, 0):
                metrics.events_published_total.labels(topic).inc(delivered)
        self._done.set()

    def wait(self, timeout: float) -> None:
        if not self._done.wait(timeout):
            raise PublishError(f"Kafka did not acknowledge within {timeout:g}s")
        if self._errors:
            raise PublishError("; ".join(self._errors[:5]))


class EventProducer:
    """One per process. A background thread serves delivery reports."""

    def __init__(self, settings: Settings, role: str = "producer") -> None:
        kafka = settings.kafka
        self._producer = Producer(
            {
                **common_config(settings, role),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": kafka.producer_linger_ms,
                "compression.type": "lz4",
                "queue.buffering.max.messages": kafka.producer_max_buffered_messages,
                "delivery.timeout.ms": kafka.delivery_timeout_ms,
            }
        )
        self.delivery_timeout = kafka.delivery_timeout_ms / 1000 + 5
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name=f"{role}-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

    def send(self, records: Sequence[OutgoingRecord]) -> DeliveryBatch:
        """Hand ``records`` to the producer; the batch tells when Kafka acknowledged them.

        Raises :class:`ProducerBusy` if the buffer cannot take all of them. Records handed
        over before the buffer filled may still be delivered; callers that need all-or-none
        visibility pair this with idempotent consumers (event ids).
        """
        sent: dict[str, int] = {}
        for record in records:
            sent[record.topic] = sent.get(record.topic, 0) + 1
        batch = DeliveryBatch(sent)
        produce, on_delivery = self._producer.produce, batch._on_delivery
        for index, record in enumerate(records):
            try:
                produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    # confluent-kafka takes only a list; most callers already built one.
                    headers=headers
                    if isinstance(headers := record.headers, list)
                    else list(headers),
                    on_delivery=on_delivery,
                )
            except BufferError:
                raise ProducerBusy(
                    f"producer buffer full after {index} of {len(records)} records"
                ) from None
        return batch

    def publish(self, records: Sequence[OutgoingRecord], timeout: float | None = None) -> None:
        """Send ``records`` and wait until Kafka acknowledged all of them."""
        self.send(records).wait(timeout if timeout is not None else self.delivery_timeout)

    def buffered(self) -> int:
        """Records handed over but not yet acknowledged."""
        return len(self._producer)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is buffered, then stop the poll thread."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.error("producer closed with undelivered records", undelivered=remaining)
        self._closed.set()
        self._poller.join(timeout=2)
