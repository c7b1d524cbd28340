"""A stand-in for confluent_kafka.Consumer and a recording sink, for unit tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import TopicPartition

from switchyard.errors import TransientError
from switchyard.events import CloudEvent
from switchyard.sinks import Record
from switchyard_devtools.testing.fakes import FakeMessage

TOPIC = "logs"


def log_event(message: str = "hello") -> bytes:
    now = "2026-01-01T00:00:00Z"
    return CloudEvent(
        type="log.received",
        source="/tests",
        id=str(uuid.uuid4()),
        data={
            "service": "svc",
            "level": "info",
            "message": message,
            "timestamp": now,
            "attributes": {},
            "received_at": now,
        },
    ).to_json()


def check_event(target_id: int = 1) -> bytes:
    """A health-checker probe result, as the health-checker publishes it."""
    return CloudEvent(
        type="target.checked",
        source="/tests",
        id=str(uuid.uuid4()),
        data={
            "target_id": target_id,
            "status": "up",
            "latency_ms": 1.5,
            "status_code": 200,
            "error": None,
            "checked_at": "2026-01-01T00:00:00Z",
        },
    ).to_json()


class FakeConsumer:
    """Serves the messages added with :meth:`add`; records commits and pauses."""

    def __init__(self, _config: dict[str, Any]) -> None:
        self.pending: list[FakeMessage] = []
        self.commits: list[list[tuple[int, int]]] = []
        self.pauses = 0
        self.closed = False
        self._lock = threading.Condition()
        self._next_offset = 0

    def add(self, count: int, partition: int = 0) -> None:
        with self._lock:
            for _ in range(count):
                self.pending.append(
                    FakeMessage(
                        TOPIC,
                        partition,
                        self._next_offset,
                        log_event(),
                        b"svc",
                        timestamp_ms=int(time.time() * 1000),
                    )
                )
                self._next_offset += 1
            self._lock.notify_all()

    def subscribe(self, topics: Sequence[str], on_assign: Callable[..., None], **_: Any) -> None:
        on_assign(self, [TopicPartition(TOPIC, 0)])

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        with self._lock:
            if not self.pending:
                self._lock.wait(timeout)
            taken, self.pending = self.pending[:num_messages], self.pending[num_messages:]
            return taken

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])

    def get_watermark_offsets(self, _: TopicPartition, cached: bool) -> None:
        return None  # as librdkafka answers before any fetch came back

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]

    def pause(self, _: list[TopicPartition]) -> None:
        self.pauses += 1

    def resume(self, _: list[TopicPartition]) -> None:
        return None

    def poll(self, timeout: float) -> None:
        time.sleep(timeout)

    def close(self) -> None:
        self.closed = True


class RecordingSink:
    """Stores batches; fails the first ``failures`` writes as a dependency outage would."""

    name = "recording"

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[tuple[float, list[Record]]] = []
        self.failures = failures
        self.attempts = 0

    def write_batch(self, records: Sequence[Record]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise TransientError("sink down")
        self.batches.append((time.monotonic(), list(records)))

    def close(self) -> None:
        return None
