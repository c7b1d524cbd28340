"""Idempotent consumers: record an event id in the same transaction as its effect."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from switchyard.db.models import ProcessedEvent


def first_delivery(connection: sa.Connection, consumer: str, event_id: str) -> bool:
    """True the first time ``consumer`` sees ``event_id``; False for a redelivery.

    Call inside the transaction that applies the event: if it rolls back, the id is not
    recorded either, and the redelivered event is applied then.
    """
    result = connection.execute(
        insert(ProcessedEvent).values(consumer=consumer, event_id=event_id).on_conflict_do_nothing()
    )
    return result.rowcount == 1
