"""The events job state changes cause, written to the outbox with the change.

Guarantee: written on the caller's connection, inside its transaction, so an event exists
exactly when its state change committed. Each carries the job's own request id and trace
context (not the caller's), so one trace runs from ``POST /jobs`` through every attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from switchyard.db.models import OutboxEvent
from switchyard.events import REQUEST_ID_HEADER, TYPE_HEADER, envelope
from switchyard.outbox.store import NOTIFY_CHANNEL

SOURCE = "switchyard/jobs"
ENQUEUED = "job.enqueued"
RETRY = "job.retry"
DEAD = "job.dead"
NOT_BEFORE_HEADER = "retry-not-before"  # the same header the retry-tier runners read
TRACEPARENT_HEADER = "traceparent"


@dataclass(frozen=True)
class JobEvent:
    topic: str
    type: str
    job_id: str
    data: dict[str, Any]
    request_id: str | None = None
    traceparent: str | None = None
    not_before: float | None = None  # Unix seconds, for a retry tier


def write(connection: sa.Connection, events: Sequence[JobEvent]) -> None:
    """Add ``events`` to the outbox (one INSERT) and wake the relay at commit."""
    if not events:
        return
    time = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    rows = []
    for event in events:
        event_id = str(uuid.uuid4())
        headers = {TYPE_HEADER: event.type}
        if event.request_id:
            headers[REQUEST_ID_HEADER] = event.request_id
        if event.traceparent:
            headers[TRACEPARENT_HEADER] = event.traceparent
        if event.not_before is not None:
            headers[NOT_BEFORE_HEADER] = f"{event.not_before:.3f}"
        value = envelope(event_id, SOURCE, event.type, time, event.data, subject=event.job_id)
        rows.append(
            {
                "event_id": event_id,
                "topic": event.topic,
                "key": event.job_id,
                "payload": orjson.dumps(value),
                "headers": headers,
            }
        )
    connection.execute(sa.insert(OutboxEvent), rows)
    connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))


def enqueued(
    topic: str,
    job_id: str,
    job_type: str,
    attempt: int,
    request_id: str | None,
    traceparent: str | None,
) -> JobEvent:
    """``job.enqueued``: the job is ready; ``attempt`` is the one about to run."""
    data = {"id": job_id, "type": job_type, "attempt": attempt}
    return JobEvent(topic, ENQUEUED, job_id, data, request_id, traceparent)
