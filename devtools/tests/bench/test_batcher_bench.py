"""The batcher benchmark: registered with `make bench` after ingest, and its yardstick (d)
really keeps the contract it is compared under: every event stored once, a redelivered
event never a second row, offsets committed after the write, text stored exactly."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, Producer, TopicPartition

from switchyard.config import Settings
from switchyard.events import CloudEvent
from switchyard.kafka.topics import ensure_topics
from switchyard_devtools.bench import BENCHMARKS, batcher, batcher_minimum


def test_registered_after_ingest() -> None:
    assert batcher.NAME == "batcher"
    assert BENCHMARKS.index("batcher") == BENCHMARKS.index("ingest") + 1


def test_sweep_holds_each_size_at_the_default_wait_and_the_default_size_batched_naturally() -> None:
    sizes = [size for size, wait in batcher.SWEEP if wait == batcher.DEFAULT_WAIT]
    assert sizes == sorted({100, 500, 2_000, batcher.DEFAULT_SIZE})
    assert (batcher.DEFAULT_SIZE, batcher.NATURAL_WAIT) in batcher.SWEEP
    assert len(batcher.SWEEP) == len(set(batcher.SWEEP))


def test_sweep_table_names_the_default_row_by_size_and_wait() -> None:
    def point(size: int, wait: float, p99: float) -> batcher.SweepPoint:
        return batcher.SweepPoint(size, wait, 30_000, 10_000, 100, 200, p99, 400, 0)

    points = [point(batcher.DEFAULT_SIZE, batcher.DEFAULT_WAIT, 321), point(123, 0.02, 654)]
    table = batcher._sweep_table(points, 10_000)
    rows = [line for line in table if line.startswith("| ") and line[2].isdigit()]
    wait_ms = f"{batcher.DEFAULT_WAIT * 1000:g} ms"
    assert rows[0].startswith(f"| {batcher.DEFAULT_SIZE:,} | {wait_ms} (default) |")
    assert "| 321 |" in rows[0]
    assert rows[1].startswith("| 123 | 20 ms |")
    assert "(default)" not in rows[1]
    assert "| 654 |" in rows[1]


def test_sweep_picture_draws_the_sizes_and_the_other_wait(tmp_path: Path) -> None:
    points = [
        batcher.SweepPoint(size, wait, 30_000, 10_000, 100, 200, 300, 400, 0)
        for size, wait in batcher.SWEEP
    ]
    picture = tmp_path / "sweep.png"
    batcher._plot(points, 10_000, picture)
    assert picture.read_bytes().startswith(b"\x89PNG")


def _event(message: str) -> CloudEvent:
    now = "2026-01-01T00:00:00+00:00"
    return CloudEvent(
        type="log.received",
        source="/tests",
        id=str(uuid.uuid4()),
        data={
            "service": "svc",
            "level": "info",
            "message": message,
            "timestamp": now,
            "attributes": {"quote": 'a "b"\tc', "nul": "x\x00y"},
            "received_at": now,
        },
    )


def _drain(settings: Settings, table: str, topic: str, group: str, expected: int) -> None:
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "topic": topic,
        "max.batch": 100,
    }
    argv = [sys.executable, "-m", batcher_minimum.__name__, settings.database_url, table]
    subprocess.run(
        [*argv, str(expected), orjson.dumps(config).decode()],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.integration
def test_yardstick_stores_each_event_once_and_commits_after(
    settings: Settings, engine: sa.Engine
) -> None:
    run = uuid.uuid4().hex[:6]
    topic, table = f"{settings.kafka.topic_prefix}minimum-{run}", f"logs_minimum_{run}"
    ensure_topics(settings, [topic])
    events = [_event(f"event {n}") for n in range(20)] + [_event("tab\there\nnew \\ line")]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for event in [*events, events[0]]:  # the first one twice: a client's retry
        producer.produce(topic, key=b"svc", value=event.to_json())  # one partition, in order
    producer.flush(10)

    _drain(settings, table, topic, f"{topic}-a", len(events))
    # Another group reads every record again: a redelivery of the whole topic.
    _drain(settings, table, topic, f"{topic}-b", len(events))

    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT id::text, message, attributes FROM {table}"))
        stored = {row.id: row for row in rows}
    assert sorted(stored) == sorted(e.id for e in events), "each event exactly once"
    last = events[-1]
    assert stored[last.id].message == "tab\there\nnew \\ line"
    assert stored[last.id].attributes == {"quote": 'a "b"\tc', "nul": "x\ufffdy"}
    committed = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"{topic}-a"}
    )
    try:
        offsets = committed.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    finally:
        committed.close()
    # Committed only after the write, and past every event stored (the retry, last, may
    # come after the consumer already had all it expected).
    assert sum(max(0, tp.offset) for tp in offsets) in (len(events), len(events) + 1)
