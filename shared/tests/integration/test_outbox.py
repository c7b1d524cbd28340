"""The transactional outbox against real PostgreSQL and Kafka."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.db.dedupe import first_delivery
from switchyard.events import CloudEvent
from switchyard.kafka.producer import EventProducer
from switchyard.kafka.tail import iter_records, wait_for_records
from switchyard.kafka.topics import USERS, topic_name
from switchyard.outbox import OutboxRelay, add_event
from switchyard_devtools.testing.infra import settings_env

pytestmark = pytest.mark.integration


def _event(marker: str) -> CloudEvent:
    return CloudEvent(type="user.updated", source="/tests", subject=marker, data={"m": marker})


def _unpublished(engine: sa.Engine, event_id: str) -> bool:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT published_at IS NULL FROM outbox WHERE event_id = :id"),
            {"id": event_id},
        ).scalar_one()


def test_rolled_back_transaction_publishes_nothing(
    settings: Settings, engine: sa.Engine, producer: EventProducer
) -> None:
    topic = topic_name(settings, USERS)
    rolled_back, committed = _event("rolled-back"), _event("committed")

    def failing_change() -> None:
        with engine.begin() as connection:
            add_event(connection, topic, rolled_back, key="1")
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    with engine.begin() as connection:
        add_event(connection, topic, committed, key="1")

    relay = OutboxRelay(engine, producer, settings.outbox)
    while relay.run_once():
        pass

    assert not _unpublished(engine, committed.id)
    ids = [r.event.id for r in iter_records(settings, topic, idle_timeout=1.5)]
    assert committed.id in ids
    assert rolled_back.id not in ids
    with engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM outbox WHERE event_id = :id"), {"id": rolled_back.id}
            ).scalar_one()
            == 0
        )


def test_relay_killed_between_publish_and_mark_loses_nothing(
    settings: Settings, engine: sa.Engine, producer: EventProducer
) -> None:
    topic = topic_name(settings, USERS)
    event = _event(f"crash-{uuid.uuid4().hex[:6]}")
    with engine.begin() as connection:
        add_event(connection, topic, event, key="42")

    # A relay whose process dies (like SIGKILL: no cleanup, no commit) right after Kafka
    # acknowledged the batch and before the rows are marked published.
    crashing_relay = textwrap.dedent("""
        import os
        from switchyard.config import load_settings
        from switchyard.db.engine import create_engine
        from switchyard.kafka.producer import EventProducer
        from switchyard.outbox import OutboxRelay

        class DiesBeforeMarking(OutboxRelay):
            def _mark_published(self, connection, ids):
                os._exit(137)

        settings = load_settings()
        DiesBeforeMarking(create_engine(settings), EventProducer(settings),
                          settings.outbox).run_once()
    """)
    result = subprocess.run(
        [sys.executable, "-c", crashing_relay],
        env=settings_env(settings),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 137, result.stderr.decode()[-2000:]

    # Kafka has it, yet the outbox still says unpublished: the transaction never committed.
    assert wait_for_records(settings, topic, lambda r: r.event.id == event.id)
    assert _unpublished(engine, event.id)

    relay = OutboxRelay(engine, producer, settings.outbox)
    while relay.run_once():
        pass
    assert not _unpublished(engine, event.id)
    copies = wait_for_records(settings, topic, lambda r: r.event.id == event.id, count=2)
    assert len(copies) == 2  # at least once: delivered twice

    # ... and a consumer that records event ids applies it once.
    applied = 0
    for copy in copies:
        with engine.begin() as connection:
            if first_delivery(connection, "outbox-test", copy.event.id):
                applied += 1
    assert applied == 1


def test_several_relays_publish_each_event_once_and_in_order(
    settings: Settings, engine: sa.Engine, producer: EventProducer
) -> None:
    topic = topic_name(settings, USERS)
    key = f"order-{uuid.uuid4().hex[:6]}"
    events = [_event(f"{key}-{i}") for i in range(60)]
    for event in events:
        with engine.begin() as connection:
            add_event(connection, topic, event, key=key)

    from concurrent.futures import ThreadPoolExecutor

    relays = [
        OutboxRelay(engine, producer, settings.outbox.model_copy(update={"batch_size": 7}))
        for _ in range(4)
    ]

    def drain(relay: OutboxRelay) -> int:
        total = 0
        for _ in range(200):
            total += relay.run_once()
        return total

    with ThreadPoolExecutor(4) as pool:
        published = sum(pool.map(drain, relays))
    assert published >= len(events)

    received = wait_for_records(settings, topic, lambda r: r.key == key.encode(), count=len(events))
    assert [r.event.id for r in received] == [e.id for e in events]
