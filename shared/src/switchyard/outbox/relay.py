"""The outbox relay: publishes unpublished rows in id order, then marks them published.

Safe with several relays: each pass takes a transaction-scoped advisory lock, so one
relay publishes at a time and order is kept; the others wait for their turn. A relay that
dies after Kafka acknowledged but before the mark leaves the rows unpublished; the next
pass publishes them again. That is the at-least-once half; consumers dedupe on the
CloudEvents id (``ce_id`` header) for the other half.
"""

from __future__ import annotations

import select
import time
from typing import Any, cast

import sqlalchemy as sa

from switchyard import metrics
from switchyard.config import OutboxSettings
from switchyard.db.models import OutboxEvent
from switchyard.events import CONTENT_TYPE, ID_HEADER
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger
from switchyard.outbox.store import NOTIFY_CHANNEL

log = get_logger(__name__)

RELAY_LOCK_KEY = 0x4F75_7462_6F78  # "Outbox"
outbox = cast(sa.Table, OutboxEvent.__table__)


class OutboxRelay:
    def __init__(self, engine: sa.Engine, producer: EventProducer, settings: OutboxSettings):
        self.engine = engine
        self.producer = producer
        self.settings = settings
        self._last_cleanup = 0.0
        self._last_gauge = 0.0

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were published (0: none or not our turn)."""
        with self.engine.begin() as connection:
            our_turn = connection.execute(
                sa.select(sa.func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY))
            ).scalar()
            if not our_turn:
                return 0
            rows = connection.execute(
                sa.select(
                    outbox.c.id,
                    outbox.c.event_id,
                    outbox.c.topic,
                    outbox.c.key,
                    outbox.c.payload,
                    outbox.c.headers,
                )
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.settings.batch_size)
            ).all()
            if not rows:
                return 0
            self.producer.publish([_record(row) for row in rows])
            self._mark_published(connection, [row.id for row in rows])
        metrics.outbox_published_total.inc(len(rows))
        return len(rows)

    def _mark_published(self, connection: sa.Connection, ids: list[int]) -> None:
        connection.execute(
            sa.update(outbox).where(outbox.c.id.in_(ids)).values(published_at=sa.func.now())
        )

    def run(self, stop: StopSignal) -> None:
        """Relay until ``stop`` is set, then publish what is left once more and return."""
        log.info("outbox relay started", batch_size=self.settings.batch_size)
        listener = self._listen()
        try:
            while not stop.is_set():
                try:
                    published = self.run_once()
                    self._housekeeping()
                except Exception as exc:
                    log.warning("outbox relay pass failed; retrying", error=str(exc)[:500])
                    stop.wait(1.0)
                    listener = self._reconnect(listener)
                    continue
                if published < self.settings.batch_size:
                    self._wait_for_notify(listener, self.settings.poll_interval_seconds)
            while self.run_once() == self.settings.batch_size:
                pass
        finally:
            if listener is not None:
                listener.close()
            log.info("outbox relay stopped")

    # -- waking up ---------------------------------------------------------------------
    def _listen(self) -> Any:
        """A connection of its own that LISTENs; None if that failed (then we poll)."""
        try:
            listener = self.engine.raw_connection()
            # Out of the pool for good: the pool must never hand this socket to another
            # thread while we wait on it, and closing it must really close it.
            listener.detach()
            connection: Any = listener.dbapi_connection
            connection.set_session(autocommit=True)
            connection.cursor().execute(f"LISTEN {NOTIFY_CHANNEL}")
            return listener
        except Exception as exc:
            log.warning("LISTEN failed; polling only", error=str(exc)[:300])
            return None

    def _reconnect(self, listener: Any) -> Any:
        if listener is not None:
            try:
                listener.close()
            except Exception:  # already broken
                log.debug("closing a broken listener failed")
        return self._listen()

    def _wait_for_notify(self, listener: Any, timeout: float) -> None:
        if listener is None:
            time.sleep(timeout)
            return
        connection = listener.dbapi_connection
        ready, _, _ = select.select([connection], [], [], timeout)
        if ready:
            connection.poll()
            connection.notifies.clear()

    # -- keeping the table small -------------------------------------------------------
    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_gauge >= 1.0:
            self._last_gauge = now
            with self.engine.connect() as connection:
                pending = connection.execute(
                    sa.select(sa.func.count())
                    .select_from(outbox)
                    .where(outbox.c.published_at.is_(None))
                ).scalar_one()
            metrics.outbox_pending.set(pending)
        if now - self._last_cleanup >= 60.0:
            self._last_cleanup = now
            with self.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at"
                        " < now() - make_interval(secs => :keep) LIMIT 10000)"
                    ),
                    {"keep": self.settings.retention_seconds},
                )


def _record(row: sa.Row[Any, Any, Any, Any, Any, Any]) -> OutgoingRecord:
    headers = [
        ("content-type", CONTENT_TYPE.encode()),
        (ID_HEADER, row.event_id.encode()),
        *((name, str(value).encode()) for name, value in (row.headers or {}).items()),
    ]
    return OutgoingRecord(
        topic=row.topic,
        value=bytes(row.payload),
        key=row.key.encode() if row.key is not None else None,
        headers=headers,
    )
