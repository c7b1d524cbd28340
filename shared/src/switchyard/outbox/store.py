"""Writing an event to the outbox, inside the caller's transaction."""

from __future__ import annotations

import sqlalchemy as sa

from switchyard import tracing
from switchyard.db.models import OutboxEvent
from switchyard.events import REQUEST_ID_HEADER, TYPE_HEADER, CloudEvent

NOTIFY_CHANNEL = "switchyard_outbox"


def add_event(
    connection: sa.Connection,
    topic: str,
    event: CloudEvent,
    key: str | None = None,
    request_id: str | None = None,
) -> None:
    """Queue ``event`` for ``topic``; it is published only if the transaction commits."""
    headers = {TYPE_HEADER: event.type, **tracing.inject_headers()}
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    connection.execute(
        sa.insert(OutboxEvent).values(
            event_id=event.id,
            topic=topic,
            key=key,
            payload=event.to_json(),
            headers=headers,
        )
    )
    # Delivered at commit (and dropped on rollback), so the relay wakes at once.
    connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
