"""One consumer group member's state: what it owns, pausing, dead letters, commits.

Guarantee: offsets are committed only for partitions this member still owns, and while
it pauses (a retry delay, work running elsewhere) it keeps polling, so it stays in the
group and never skips a record: one fetched from a partition assigned during the pause
is held for the next batch and that partition paused with the others.

``kafka_consumer_lag{group, topic, partition}`` is set for exactly the partitions this
member owns (a revoked one's child is removed), from the high watermark of the last fetch
minus the offset committed (or, before the first commit, the fetch position): no broker
call, refreshed at most every ``LAG_EVERY_SECONDS`` by :meth:`GroupMembership.record_lag`.

:class:`GroupMembership` is what a failure policy gets as its
:class:`~switchyard.kafka.policy.RunnerControls`; the loop itself
(:mod:`switchyard.kafka.runner`) uses it to commit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from confluent_kafka import TopicPartition

from switchyard import metrics
from switchyard.kafka.deadletter import DeadLetters
from switchyard.kafka.records import ConsumedEvent, KafkaMessage
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger

log = get_logger(__name__)

Rebalance = Callable[[Any, list[TopicPartition]], None]
LAG_EVERY_SECONDS = 0.5


class KafkaConsumer(Protocol):
    """The part of ``confluent_kafka.Consumer`` the runner uses (tests pass a fake)."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: Rebalance | None = None,
        on_revoke: Rebalance | None = None,
        on_lost: Rebalance | None = None,
    ) -> None: ...
    def consume(self, num_messages: int = 1, timeout: float = -1) -> Sequence[KafkaMessage]: ...
    def poll(self, timeout: float = -1) -> KafkaMessage | None: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[False]) -> Any: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int] | None: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def close(self) -> None: ...


class GroupMembership:
    def __init__(
        self, consumer: KafkaConsumer, group_id: str, stop: StopSignal, dead_letters: DeadLetters
    ) -> None:
        self.consumer = consumer
        self.group_id = group_id
        self._stop = stop
        self._dead_letters = dead_letters
        self._assigned: set[tuple[str, int]] = set()
        self._committed: dict[tuple[str, int], int] = {}  # next offset, per owned partition
        self._lag_labelled: set[tuple[str, int]] = set()
        self._lag_at = float("-inf")
        self._held: list[KafkaMessage] = []

    # -- RunnerControls --------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def is_assigned(self, event: ConsumedEvent) -> bool:
        return (event.topic, event.partition) in self._assigned

    def dead_letter(
        self, event: ConsumedEvent, error: BaseException, topic: str | None = None
    ) -> None:
        self._dead_letters.publish(event, error, topic)

    def pause_for(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        return self._serve_paused(lambda: deadline - time.monotonic(), interruptible=True)

    def pause_until(self, done: Callable[[], bool]) -> None:
        self._serve_paused(lambda: 0.0 if done() else 0.05, interruptible=False)

    def _serve_paused(self, remaining: Callable[[], float], interruptible: bool) -> bool:
        """Poll, partitions paused, until ``remaining()`` (seconds to wait) is not > 0."""
        self.consumer.pause(self.consumer.assignment())
        try:
            while (wait := remaining()) > 0:
                if interruptible and self._stop.is_set():
                    return False
                message = self.consumer.poll(min(0.2, wait))
                if message is not None and message.error() is None:
                    self._hold(message)
            return True
        finally:
            self.consumer.resume(self.consumer.assignment())

    def _hold(self, message: KafkaMessage) -> None:
        """Keep a record from a partition assigned during the pause; pause that one too."""
        self._held.append(message)
        topic, partition = message.topic(), message.partition()
        if topic is not None and partition is not None:
            self.consumer.pause([TopicPartition(topic, partition)])

    def take_held(self) -> list[KafkaMessage]:
        """Records fetched while paused, in order: the start of the next batch."""
        held, self._held = self._held, []
        return held

    # -- rebalances ------------------------------------------------------------------
    def on_assign(self, _: object, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        log.info(
            "partitions assigned",
            group=self.group_id,
            partitions=[f"{p.topic}[{p.partition}]" for p in partitions],
        )

    def on_revoke(self, _: object, partitions: list[TopicPartition]) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        self._assigned -= lost
        self._forget_lag(lost)
        log.info(
            "partitions revoked",
            group=self.group_id,
            partitions=[f"{p.topic}[{p.partition}]" for p in partitions],
        )

    # -- commits ---------------------------------------------------------------------
    def commit(self, highest: dict[tuple[str, int], int]) -> None:
        """Commit past ``highest`` offset per partition, for partitions still owned."""
        offsets = [
            TopicPartition(t, p, o + 1) for (t, p), o in highest.items() if (t, p) in self._assigned
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # the records will come again; handlers are idempotent
            log.warning(
                "offset commit failed; records will be redelivered",
                group=self.group_id,
                error=str(exc),
            )
            return
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset
        self.record_lag(force=True)

    # -- lag -------------------------------------------------------------------------
    def record_lag(self, *, force: bool = False) -> None:
        """Set the lag of every owned partition whose watermark and offset are known."""
        now = time.monotonic()
        if not force and now - self._lag_at < LAG_EVERY_SECONDS:
            return
        self._lag_at = now
        owned = sorted(self._assigned)
        try:
            positions = {
                (tp.topic, tp.partition): tp.offset
                for tp in self.consumer.position([TopicPartition(t, p) for t, p in owned])
            }
        except Exception as exc:  # a metric must never stop the consumer
            log.debug("consumer positions unavailable", group=self.group_id, error=str(exc))
            return
        for key in owned:
            start = self._committed.get(key, positions.get(key, -1))
            watermarks = self.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            # None (or -1) until a fetch for the partition came back; a negative position
            # is "not fetched yet" (OFFSET_INVALID): both leave the lag unknown, unset.
            if watermarks is None or watermarks[1] < 0 or start < 0:
                continue
            topic, partition = key
            lag = max(0, watermarks[1] - start)
            metrics.kafka_consumer_lag.labels(self.group_id, topic, str(partition)).set(lag)
            self._lag_labelled.add(key)

    def forget_all_lag(self) -> None:
        """Remove this member's lag children (it is leaving the group)."""
        self._forget_lag(set(self._lag_labelled))

    def _forget_lag(self, partitions: set[tuple[str, int]]) -> None:
        for key in partitions & self._lag_labelled:
            topic, partition = key
            with contextlib.suppress(KeyError):  # already gone: nothing to remove
                metrics.kafka_consumer_lag.remove(self.group_id, topic, str(partition))
        self._lag_labelled -= partitions
        for key in partitions:
            self._committed.pop(key, None)
