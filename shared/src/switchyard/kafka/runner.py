"""The consumer loop: poll, gather a batch, hand it over, commit only after it settled.

Guarantee: an offset is committed only after the failure policy said the batch is
settled (:class:`Outcome.COMMIT`), and only for partitions this member still owns; so
every record is handled (or dead-lettered) at least once. SIGTERM (via
:class:`StopSignal`): the batch being gathered is handed over, committed, and the
consumer leaves its group. What a failure means is the policy's (:mod:`.policy`); what
wraps each handler call is middleware (:mod:`.middleware`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError

from switchyard.config import Settings
from switchyard.events import InvalidEvent
from switchyard.kafka.client_config import common_config
from switchyard.kafka.deadletter import DeadLetters, Publisher
from switchyard.kafka.membership import GroupMembership, KafkaConsumer
from switchyard.kafka.middleware import Middleware, default_middleware, wrap
from switchyard.kafka.policy import FailurePolicy, Outcome, RetryInPlaceThenDeadLetter
from switchyard.kafka.records import BatchHandler, ConsumedEvent, KafkaMessage, decode, raw
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger

log = get_logger(__name__)


@dataclass
class RunnerOptions:
    max_batch: int = 1
    max_wait_seconds: float = 0.5
    # For the default policy (RetryInPlaceThenDeadLetter), unless one is given:
    max_attempts: int = 3
    backoff_base_seconds: float = 0.2
    backoff_cap_seconds: float = 30.0
    # False: records reach the handler undecoded (``event`` is parsed only if read); the
    # handler then validates the value itself and raises for a bad one, which the default
    # policy isolates and dead-letters (at once for InvalidEvent or PermanentError).
    decode: bool = True
    extra_config: dict[str, Any] = field(default_factory=dict)


def kafka_consumer(settings: Settings, group_id: str, options: RunnerOptions) -> Consumer:
    """A group member with manual commits, as the runner needs it."""
    return Consumer(
        {
            **common_config(settings, f"consumer-{group_id}"),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            "heartbeat.interval.ms": max(100, settings.kafka.session_timeout_ms // 10),
            "max.poll.interval.ms": 300_000,
            **options.extra_config,
        }
    )


class ConsumerRunner:
    """Runs one consumer group member until :class:`StopSignal` is set."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        topics: Sequence[str],
        handler: BatchHandler,
        dlq_producer: Publisher,
        stop: StopSignal,
        options: RunnerOptions | None = None,
        *,
        policy: FailurePolicy | None = None,
        middleware: Sequence[Middleware] | None = None,
        consumer: KafkaConsumer | None = None,
    ) -> None:
        self.group_id = group_id
        self.topics = list(topics)
        self.handler = handler
        self.options = options = options or RunnerOptions()
        self.policy = policy or RetryInPlaceThenDeadLetter(
            options.max_attempts, options.backoff_base_seconds, options.backoff_cap_seconds
        )
        self._call = wrap(
            handler, default_middleware(group_id) if middleware is None else middleware
        )
        self.consumer: KafkaConsumer = consumer or kafka_consumer(settings, group_id, options)
        self._stop = stop
        self.member = GroupMembership(
            self.consumer, group_id, stop, DeadLetters(dlq_producer, group_id)
        )

    # -- the loop --------------------------------------------------------------------
    def run(self) -> None:
        self.consumer.subscribe(
            self.topics,
            on_assign=self.member.on_assign,
            on_revoke=self.member.on_revoke,
            on_lost=self.member.on_revoke,
        )
        log.info("consumer started", group=self.group_id, topics=self.topics)
        try:
            while not self._stop.is_set():
                batch = self._gather()
                self.member.record_lag()  # each cycle, idle ones too (throttled)
                if batch:
                    self._process(batch)
        finally:
            self.member.forget_all_lag()  # its partitions' lag is the next owner's to tell
            self.consumer.close()  # leaves the group so partitions move at once
            log.info("consumer stopped", group=self.group_id)

    def _gather(self) -> list[KafkaMessage]:
        """Up to ``max_batch`` records, waiting at most ``max_wait`` after the first."""
        options = self.options
        batch = self.member.take_held()
        first_at = time.monotonic() if batch else None
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
            # The first record alone: librdkafka's consume(n, t) waits for n records or t,
            # so asking for a whole batch would hold a lone record for the full timeout.
            wanted = 1 if first_at is None else options.max_batch - len(batch)
            self._take(self.consumer.consume(wanted, timeout), batch)
            if batch and first_at is None:
                first_at = time.monotonic()
                if len(batch) < options.max_batch:  # what came with it, whatever max_wait
                    self._take(self.consumer.consume(options.max_batch - len(batch), 0), batch)
            if self._stop.is_set() and first_at is None:
                break
        return batch

    @staticmethod
    def _take(messages: Sequence[KafkaMessage], batch: list[KafkaMessage]) -> None:
        for message in messages:
            error = message.error()
            if error is None:
                batch.append(message)
            elif error.fatal():
                raise RuntimeError(f"fatal Kafka error: {error.str()}")
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", error=error.str())

    def _process(self, messages: list[KafkaMessage]) -> None:
        events: list[ConsumedEvent] = []
        offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            try:
                event = decode(message, self.options.decode)
            except InvalidEvent as exc:
                event = raw(message)
                self.policy.undecodable(event, exc, self.member)
            else:
                events.append(event)
            key = (event.topic, event.partition)
            offsets[key] = max(offsets.get(key, -1), event.offset)
        if events:
            outcome = self.policy.handle(events, self._call, self.member)
            if outcome is Outcome.LEAVE_UNCOMMITTED:
                return  # stopping before the batch settled: the next member redoes it
        self.member.commit(offsets)
