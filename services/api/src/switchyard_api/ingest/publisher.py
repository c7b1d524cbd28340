"""From validated items to Kafka: the bounded buffer, CloudEvents, one wait for all acks.

The bounded buffer is :class:`InFlightBudget`: events and bytes handed to the producer
and not yet acknowledged, per process. A request takes room for all its events at once
before any is produced, or gets 429; so a request is never half published because the
buffer filled. The budget is at most the producer's own queue bound, so the producer
never refuses a record of a request that got room (no :class:`ProducerBusy` midway).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter

from switchyard import metrics, tracing
from switchyard.config import Settings
from switchyard.events import (
    CONTENT_TYPE,
    ID_HEADER,
    REQUEST_ID_HEADER,
    TYPE_HEADER,
    envelope,
)
from switchyard.kafka.producer import EventProducer, OutgoingRecord, PublishError
from switchyard_api.http.problems import Problem

SOURCE = "/switchyard/api"
CONTENT_TYPE_HEADER = "content-type"
CLOUDEVENT_TYPE = CONTENT_TYPE.encode()


class InFlightBudget:
    """A counting semaphore over (events, bytes) that takes n units atomically."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.events = 0
        self.bytes = 0
        self._room = threading.Condition()

    def acquire(self, events: int, size: int, wait: float) -> bool:
        deadline = time.monotonic() + wait
        with self._room:
            while self.events + events > self.max_events or self.bytes + size > self.max_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._room.wait(remaining):
                    return False
            self.events += events
            self.bytes += size
            return True

    def release(self, events: int, size: int) -> None:
        with self._room:
            self.events -= events
            self.bytes -= size
            self._room.notify_all()


class Ingestor:
    """Publishes the items of one request to one topic, whole or not at all."""

    def __init__(self, producer: EventProducer, settings: Settings) -> None:
        ingest = settings.ingest
        self.producer = producer
        self.budget = InFlightBudget(
            min(ingest.max_in_flight_events, settings.kafka.producer_max_buffered_messages),
            ingest.max_in_flight_bytes,
        )
        self.wait = ingest.admission_wait_seconds
        self.retry_after = str(ingest.retry_after_seconds)
        # Labelled children looked up once: ``labels()`` takes a lock and builds a key.
        self._accepted: dict[str, Counter] = {}

    def publish(
        self,
        kind: str,
        topic: str,
        event_type: str,
        items: Sequence[tuple[uuid.UUID | None, dict[str, Any]]],
        request_id: str,
        received: str,
    ) -> None:
        """Each item is (client id, event data with ``service``); raises :class:`Problem`."""
        # event_headers' names and order, each event's id last; built once per request.
        shared_headers = [
            (CONTENT_TYPE_HEADER, CLOUDEVENT_TYPE),
            (TYPE_HEADER, event_type.encode()),
            (REQUEST_ID_HEADER, request_id.encode()),
            *((name, value.encode()) for name, value in tracing.inject_headers().items()),
        ]
        fresh_ids = _new_ids(sum(1 for client_id, _ in items if client_id is None))
        records = []
        size = 0
        for client_id, data in items:
            event_id = str(client_id) if client_id is not None else next(fresh_ids)
            value = orjson.dumps(envelope(event_id, SOURCE, event_type, received, data))
            size += len(value)
            records.append(
                OutgoingRecord(
                    topic,
                    value,
                    data["service"].encode(),
                    [*shared_headers, (ID_HEADER, event_id.encode())],
                )
            )
        if len(records) > self.budget.max_events or size > self.budget.max_bytes:
            raise Problem(
                413,
                "The request holds more than the ingest buffer can take at once; split it.",
                slug="too-many-items",
            )
        if not self.budget.acquire(len(records), size, self.wait):
            metrics.ingest_errors_total.labels(kind, "overloaded").inc()
            raise Problem(
                429,
                "The ingest buffer is full; nothing of this request was "
                "published. Retry after the delay.",
                slug="overloaded",
                headers={"Retry-After": self.retry_after},
            )
        try:
            # Returns once every delivery report arrived, so the room is free again after.
            self.producer.publish(records)
        except PublishError as exc:
            metrics.ingest_errors_total.labels(kind, "kafka").inc()
            raise Problem(
                503,
                f"Kafka did not acknowledge the events ({exc}); retry. Items "
                "with an `id` are stored once however often they are sent.",
                slug="kafka-unavailable",
                headers={"Retry-After": self.retry_after},
            ) from None
        finally:
            self.budget.release(len(records), size)
        accepted = self._accepted.get(kind)
        if accepted is None:
            accepted = self._accepted[kind] = metrics.ingest_events_total.labels(kind)
        accepted.inc(len(records))


def received_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _new_ids(count: int) -> Iterator[str]:
    """Random (version 4) UUIDs from one read of the system's entropy for the request."""
    entropy = os.urandom(16 * count)
    for start in range(0, 16 * count, 16):
        digits = entropy[start : start + 16].hex()
        yield (
            f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
            f"{_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:]}"
        )


# The RFC 4122 variant: the top two bits of the 17th hex digit are 10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
