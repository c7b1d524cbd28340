"""The consumer runner: poll, hand batches to a handler, commit only after it succeeded.

What happens to a failing batch:

* a dependency is down (:func:`switchyard.errors.is_transient`): the same batch is retried
  with backoff, the partitions paused, for as long as it takes; nothing is committed;
* anything else: the batch is split and each record retried alone; a record that still
  fails after ``max_attempts`` (or raises :class:`PermanentError`, or is not a CloudEvent)
  goes to ``<topic>.dlq`` with the error in its headers, and the runner goes on.

SIGTERM (via :class:`StopSignal`): the batch being gathered is handed over, committed,
and the consumer leaves its group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from switchyard import metrics, tracing
from switchyard.backoff import backoff_delay
from switchyard.config import Settings
from switchyard.errors import PermanentError, is_transient
from switchyard.events import (
    REQUEST_ID_HEADER,
    CloudEvent,
    Headers,
    InvalidEvent,
    headers_to_dict,
)
from switchyard.kafka.client_config import common_config
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.topics import dlq_name
from switchyard.lifecycle import StopSignal
from switchyard.logging import bind_context, get_logger

log = get_logger(__name__)


class ConsumedEvent:
    """One record as a handler sees it.

    ``event`` (the parsed envelope) and ``headers`` are decoded on first access and kept,
    so a handler that reads only ``value`` (the batcher, with ``RunnerOptions(decode=
    False)``) never pays for a CloudEvent, a datetime or a header dict per record.
    """

    __slots__ = ("_event", "_headers", "_raw_headers", "key", "offset", "partition",
                 "timestamp_ms", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes, headers: Headers | None, timestamp_ms: int,
                 event: CloudEvent | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp_ms = timestamp_ms
        self._raw_headers = headers
        self._headers: dict[str, str] | None = None
        self._event = event

    @property
    def event(self) -> CloudEvent:
        """The CloudEvent; raises :class:`InvalidEvent` if the value is not one."""
        if self._event is None:
            self._event = CloudEvent.from_json(self.value)
        return self._event

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = headers_to_dict(self._raw_headers)
        return self._headers

    @property
    def request_id(self) -> str | None:
        return self.headers.get(REQUEST_ID_HEADER)

    def __repr__(self) -> str:
        return f"ConsumedEvent({self.topic}[{self.partition}]@{self.offset})"


BatchHandler = Callable[[list[ConsumedEvent]], None]


@dataclass
class RunnerOptions:
    max_batch: int = 1
    max_wait_seconds: float = 0.5
    max_attempts: int = 3
    backoff_base_seconds: float = 0.2
    backoff_cap_seconds: float = 30.0
    # False: records reach the handler undecoded (``event`` is parsed only if read); the
    # handler then validates the value itself and raises for a bad one, which the runner
    # isolates and dead-letters (at once for InvalidEvent or PermanentError).
    decode: bool = True
    extra_config: dict[str, Any] = field(default_factory=dict)


class ConsumerRunner:
    """Runs one consumer group member until :class:`StopSignal` is set."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        topics: Sequence[str],
        handler: BatchHandler,
        dlq_producer: EventProducer,
        stop: StopSignal,
        options: RunnerOptions | None = None,
    ) -> None:
        self.group_id = group_id
        self.topics = list(topics)
        self.handler = handler
        self.options = options or RunnerOptions()
        self._dlq = dlq_producer
        self._stop = stop
        self._assigned: set[tuple[str, int]] = set()
        self._lag: dict[tuple[str, int], int] = {}
        self._consumer = Consumer({
            **common_config(settings, f"consumer-{group_id}"),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            "heartbeat.interval.ms": max(100, settings.kafka.session_timeout_ms // 10),
            "max.poll.interval.ms": 300_000,
            **self.options.extra_config,
        })

    # -- lifecycle -------------------------------------------------------------------
    def run(self) -> None:
        self._consumer.subscribe(self.topics, on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_revoke)
        log.info("consumer started", group=self.group_id, topics=self.topics)
        try:
            while not self._stop.is_set():
                batch = self._gather()
                if batch:
                    self._process(batch)
        finally:
            self._consumer.close()  # leaves the group so partitions move at once
            log.info("consumer stopped", group=self.group_id)

    def _on_assign(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("partitions assigned", group=self.group_id,
                 partitions=[f"{p.topic}[{p.partition}]" for p in partitions])

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned -= {(p.topic, p.partition) for p in partitions}
        log.info("partitions revoked", group=self.group_id,
                 partitions=[f"{p.topic}[{p.partition}]" for p in partitions])

    # -- gathering -------------------------------------------------------------------
    def _gather(self) -> list[Message]:
        """Up to ``max_batch`` records, waiting at most ``max_wait`` after the first."""
        options = self.options
        batch: list[Message] = []
        first_at: float | None = None
        while len(batch) < options.max_batch:
            if first_at is None:
                if self._stop.is_set():
                    break
                timeout = 0.5
            else:
                timeout = options.max_wait_seconds - (time.monotonic() - first_at)
                if timeout <= 0 or self._stop.is_set():
                    break
                timeout = min(timeout, 0.5)  # a stop request must not wait for max_wait
            messages = self._consumer.consume(options.max_batch - len(batch), timeout)
            for message in messages:
                error = message.error()
                if error is None:
                    batch.append(message)
                elif error.fatal():
                    raise RuntimeError(f"fatal Kafka error: {error.str()}")
                elif error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", error=error.str())
            if batch and first_at is None:
                first_at = time.monotonic()
            if self._stop.is_set() and first_at is None:
                break
        return batch

    # -- processing ------------------------------------------------------------------
    def _process(self, messages: list[Message]) -> None:
        events: list[ConsumedEvent] = []
        parse = self.options.decode
        for message in messages:
            try:
                events.append(_decode(message, parse))
            except InvalidEvent as exc:
                self._dead_letter(message, exc)
        if events and not self._handle_batch(events):
            return  # stopped while a dependency was down: leave it uncommitted
        self._commit(messages)

    def _handle_batch(self, events: list[ConsumedEvent]) -> bool:
        """Hand ``events`` over until done; False if stopped before that."""
        attempt = 0
        while True:
            events = [e for e in events if (e.topic, e.partition) in self._assigned]
            if not events:
                return True  # partitions moved to another member; it will redo them
            try:
                self._call_handler(events)
                return True
            except Exception as exc:
                if not is_transient(exc):
                    return self._handle_one_by_one(events, exc)
                attempt += 1
                delay = backoff_delay(attempt, self.options.backoff_base_seconds,
                                      self.options.backoff_cap_seconds)
                log.warning("dependency failed; retrying batch", group=self.group_id,
                            error=f"{type(exc).__name__}: {exc}"[:500], attempt=attempt,
                            retry_in=round(delay, 3), records=len(events))
                if not self._pause_for(delay):
                    return False

    def _handle_one_by_one(self, events: list[ConsumedEvent], batch_error: Exception) -> bool:
        if len(events) > 1:
            log.warning("batch failed; isolating the bad record", group=self.group_id,
                        error=f"{type(batch_error).__name__}: {batch_error}"[:500],
                        records=len(events))
        for event in events:
            attempt = 1
            error: Exception = batch_error
            while True:
                if len(events) > 1 or attempt > 1:
                    try:
                        self._call_handler([event])
                        break
                    except Exception as exc:
                        error = exc
                if self._stop.is_set() and is_transient(error):
                    return False
                if isinstance(error, PermanentError | InvalidEvent) or (
                    not is_transient(error) and attempt >= self.options.max_attempts
                ):
                    self._dead_letter(event, error)
                    break
                attempt += 1
                if not self._pause_for(backoff_delay(attempt, self.options.backoff_base_seconds,
                                                     self.options.backoff_cap_seconds)):
                    return False
        return True

    def _call_handler(self, events: list[ConsumedEvent]) -> None:
        if len(events) == 1:
            bind_context(request_id=events[0].request_id)
        with tracing.span(f"consume {events[0].topic}",
                          parent_headers=events[0].headers if len(events) == 1 else None,
                          records=len(events)):
            self.handler(events)
        # One increment per topic and batch: per record, this was a lock and a label
        # lookup for every event.
        counts: dict[str, int] = {}
        for event in events:
            counts[event.topic] = counts.get(event.topic, 0) + 1
        for topic, count in counts.items():
            metrics.events_consumed_total.labels(topic, self.group_id, "ok").inc(count)

    def _pause_for(self, seconds: float) -> bool:
        """Wait, still serving the group (heartbeats, rebalances); False when stopping."""
        assignment = self._consumer.assignment()
        self._consumer.pause(assignment)
        try:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                if self._stop.is_set():
                    return False
                self._consumer.poll(min(0.2, remaining))
            return True
        finally:
            self._consumer.resume(self._consumer.assignment())

    def _dead_letter(self, record: Message | ConsumedEvent, error: Exception) -> None:
        if isinstance(record, ConsumedEvent):
            topic, partition, offset = record.topic, record.partition, record.offset
            key, value, headers = record.key, record.value, list(record.headers.items())
        else:
            topic, partition, offset = _position(record)
            key, value = record.key(), record.value() or b""
            headers = list(headers_to_dict(record.headers()).items())
        dlq_headers = [(k, v.encode()) for k, v in headers] + [
            ("dlq-error", f"{error}"[:2000].encode()),
            ("dlq-error-type", type(error).__name__.encode()),
            ("dlq-original-topic", topic.encode()),
            ("dlq-original-partition", str(partition).encode()),
            ("dlq-original-offset", str(offset).encode()),
            ("dlq-consumer-group", self.group_id.encode()),
            ("dlq-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        self._dlq.publish([OutgoingRecord(dlq_name(topic), value, key, dlq_headers)])
        metrics.dead_letters_total.labels(topic).inc()
        metrics.events_consumed_total.labels(topic, self.group_id, "dead_lettered").inc()
        log.error("record dead-lettered", group=self.group_id, topic=topic,
                  partition=partition, offset=offset, error=f"{error}"[:500],
                  error_type=type(error).__name__)

    def _commit(self, messages: list[Message]) -> None:
        highest: dict[tuple[str, int], int] = {}
        for message in messages:
            topic, partition, offset = _position(message)
            if (topic, partition) in self._assigned:
                highest[(topic, partition)] = max(highest.get((topic, partition), -1), offset)
        if not highest:
            return
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # the records will come again; handlers are idempotent
            log.warning("offset commit failed; records will be redelivered",
                        group=self.group_id, error=str(exc))
            return
        self._record_lag(offsets)

    def _record_lag(self, committed: list[TopicPartition]) -> None:
        """Lag per topic from the high watermarks of the last fetch (no broker call)."""
        for tp in committed:
            watermarks = self._consumer.get_watermark_offsets(tp, cached=True)
            if watermarks is not None:  # None until a fetch for this partition came back
                self._lag[(tp.topic, tp.partition)] = max(0, watermarks[1] - tp.offset)
        totals: dict[str, int] = {}
        for (topic, _), lag in self._lag.items():
            totals[topic] = totals.get(topic, 0) + lag
        for topic, lag in totals.items():
            metrics.kafka_consumer_lag.labels(topic, self.group_id).set(lag)


def _position(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed record (never None once consumed)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise InvalidEvent("record without a position; it was not consumed from a topic")
    return topic, partition, offset


def _decode(message: Message, parse: bool = True) -> ConsumedEvent:
    """The record; with ``parse``, its CloudEvent too (:class:`InvalidEvent` if not one)."""
    value = message.value()
    if value is None:
        raise InvalidEvent("record has no value")
    topic, partition, offset = _position(message)
    return ConsumedEvent(topic, partition, offset, message.key(), value, message.headers(),
                         message.timestamp()[1], CloudEvent.from_json(value) if parse else None)
