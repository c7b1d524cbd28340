"""The batcher with real processes, Kafka and PostgreSQL: nothing lost, nothing doubled."""

from __future__ import annotations

import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.db.migrate import upgrade
from switchyard.events import CloudEvent, event_headers
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.topics import HEALTH, topic_name
from switchyard_devtools.load.generator import Request, run_load
from switchyard_devtools.stack.infra import start_postgres

from .conftest import Batcher, count_rows, wait_for_rows

pytestmark = pytest.mark.integration


def _requests(
    url: str, service: str, count: int, per_request: int, ids: list[str] | None = None
) -> list[Request]:
    ids = ids or [str(uuid.uuid4()) for _ in range(count)]
    requests = []
    for start in range(0, count, per_request):
        body = [
            {"id": ids[i], "service": f"{service}-{i % 7}", "message": f"event {i}"}
            for i in range(start, min(count, start + per_request))
        ]
        requests.append(Request("POST", f"{url}/logs", orjson.dumps(body), events=len(body)))
    return requests


def _post(
    url: str, service: str, count: int, per_request: int = 10, concurrency: int = 8
) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    result = run_load(
        _requests(url, service, count, per_request, ids), concurrency, show_progress=False
    )
    assert result.statuses == {202: len(range(0, count, per_request))}, result.summary()
    return ids


def test_n_events_are_n_rows_though_the_batcher_is_killed_twice(
    api_url: str, batcher: Batcher, engine: sa.Engine
) -> None:
    service = f"kill-{uuid.uuid4().hex[:6]}"
    total, chunks = 5_000, 5
    batcher.start().wait_until_assigned(3)
    sent: list[str] = []

    def post_in_chunks() -> None:
        for _ in range(chunks):
            sent.extend(_post(api_url, service, total // chunks))
            time.sleep(1.0)

    poster = threading.Thread(target=post_in_chunks)
    poster.start()
    for stored_before_kill in (500, 2_000):
        # Killed while it is writing: some batches stored, later ones not yet committed.
        assert wait_for_rows(engine, service, stored_before_kill) >= stored_before_kill
        batcher.kill()
        if stored_before_kill == 500:
            batcher.start().wait_until_assigned(3)
    # A client that did not hear back retries: the same ids again must not add rows.
    retried = _requests(api_url, service, 500, 50)
    assert run_load(retried, 4, show_progress=False).statuses == {202: 10}
    assert run_load(retried, 4, show_progress=False).statuses == {202: 10}
    batcher.start()
    poster.join()
    expected = total + 500
    assert wait_for_rows(engine, service, expected) == expected
    time.sleep(1.0)  # a duplicate would show up within a batch interval
    assert count_rows(engine, service) == (expected, expected)
    with engine.connect() as connection:
        stored = set(
            connection.execute(
                sa.text("SELECT id::text FROM logs WHERE service LIKE :p"), {"p": f"{service}%"}
            ).scalars()
        )
    assert set(sent) <= stored


def test_what_was_stored_reads_back_newest_first_page_by_page(
    api_url: str, batcher: Batcher, engine: sa.Engine
) -> None:
    service = f"read-{uuid.uuid4().hex[:6]}"
    items = [
        {
            "service": service,
            "message": f"disk {n}% full" if n % 2 else f"ok {n}",
            "level": "warning" if n % 2 else "info",
            "timestamp": f"2026-03-01T10:00:{n:02d}+01:00",
        }
        for n in range(30)
    ]
    assert run_load(
        [
            Request("POST", f"{api_url}/logs", orjson.dumps(items), events=30),
            Request(
                "POST",
                f"{api_url}/health",
                orjson.dumps({"service": service, "status": "degraded", "latency_ms": 5.5}),
            ),
        ],
        1,
        show_progress=False,
    ).statuses == {202: 2}
    batcher.start()
    assert wait_for_rows(engine, service, 30) == 30
    seen: list[dict[str, object]] = []
    cursor = ""
    while True:
        page = _get(f"{api_url}/logs?service={service}&limit=7{cursor}")
        seen.extend(page["items"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert [item["message"] for item in seen] == [
        f"disk {n}% full" if n % 2 else f"ok {n}" for n in reversed(range(30))
    ]
    warnings = _get(
        f"{api_url}/logs?service={service}&level=warning&q=%25+FULL"
        f"&since=2026-03-01T09:00:10Z&until=2026-03-01T09:00:20Z"
    )["items"]
    assert [item["message"] for item in warnings] == [
        f"disk {n}% full" for n in (19, 17, 15, 13, 11)
    ]
    deadline = time.monotonic() + 30
    while not (pings := _get(f"{api_url}/health?service={service}")["items"]):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert pings[0]["status"] == "degraded" and pings[0]["latency_ms"] == 5.5


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: dict[str, Any] = orjson.loads(response.read())
    return body


def test_sigterm_in_the_middle_of_a_batch_loses_nothing(
    api_url: str, settings: Settings, tmp_path: Path, engine: sa.Engine
) -> None:
    # The batch can only be flushed by the shutdown: it is neither full nor old enough.
    process = Batcher(
        settings, tmp_path, BATCHER__LOGS__MAX_WAIT_SECONDS="60", BATCHER__LOGS__MAX_SIZE="100000"
    ).start()
    try:
        process.wait_until_assigned(3)
        service = f"term-{uuid.uuid4().hex[:6]}"
        _post(api_url, service, 700)
        time.sleep(2.0)
        assert count_rows(engine, service) == (0, 0)
        started = time.monotonic()
        assert process.stop() == 0
        assert time.monotonic() - started < 15
        assert count_rows(engine, service) == (700, 700)
        lines = sum(
            path.read_bytes().count(f'"{service}-'.encode())
            for path in (tmp_path / "sinks").rglob("*.jsonl")
        )
        assert lines == 700
    finally:
        if process.process is not None and process.process.poll() is None:
            process.kill()


def test_postgres_outage_holds_events_in_kafka_until_it_returns(
    api_url: str, settings: Settings, tmp_path: Path
) -> None:
    server = start_postgres(tmp_path / "pg" / "data")
    port = int(server.url.rsplit(":", 1)[1].split("/", 1)[0])
    isolated = settings.model_copy(
        update={"database_url": server.url.rsplit("/", 1)[0] + "/outage"}
    )
    upgrade(isolated)
    engine = sa.create_engine(isolated.sqlalchemy_url, poolclass=sa.pool.NullPool)
    process = Batcher(isolated, tmp_path, BATCHER__BREAKER_RESET_SECONDS="0.5").start()
    service = f"outage-{uuid.uuid4().hex[:6]}"
    try:
        _post(api_url, service, 300)
        assert wait_for_rows(engine, service, 300) == 300
        server.stop()
        # The API does not need PostgreSQL to accept: Kafka holds the events.
        _post(api_url, service, 1_000)
        time.sleep(4.0)
        assert process.process is not None and process.process.poll() is None
        server = start_postgres(tmp_path / "pg" / "data", port=port)
        assert wait_for_rows(engine, service, 1_300, timeout=60) == 1_300
        time.sleep(1.0)
        assert count_rows(engine, service) == (1_300, 1_300)
        log = process.log.read_text()
        assert "circuit opened" in log and "circuit closed" in log
    finally:
        process.stop()
        engine.dispose()
        server.stop()


def test_probe_results_are_stored_once_in_target_checks(
    settings: Settings, batcher: Batcher, engine: sa.Engine, producer: EventProducer
) -> None:
    target_id = int(uuid.uuid4().int % 10**12)
    topic = topic_name(settings, HEALTH)
    records = []
    for n in range(5):
        event = CloudEvent(
            type="target.checked",
            source="tests",
            data={
                "target_id": target_id,
                "status": "down" if n % 2 else "up",
                "latency_ms": 1.5 * n,
                "status_code": 200 if n % 2 == 0 else None,
                "error": "connection_refused: [Errno 111]" if n % 2 else None,
                "checked_at": f"2026-03-01T10:00:0{n}Z",
            },
        )
        records.append(
            OutgoingRecord(
                topic, event.to_json(), str(target_id).encode(), event_headers(event, None)
            )
        )
    producer.publish([*records, records[0]])  # a redelivered copy is stored once
    batcher.start()
    deadline = time.monotonic() + 60
    while True:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT status, latency_ms, status_code, error FROM target_checks"
                    " WHERE target_id = :t ORDER BY checked_at"
                ),
                {"t": target_id},
            ).all()
        if len(rows) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert [tuple(r) for r in rows] == [
        ("up", 0.0, 200, None),
        ("down", 1.5, None, "connection_refused: [Errno 111]"),
        ("up", 3.0, 200, None),
        ("down", 4.5, None, "connection_refused: [Errno 111]"),
        ("up", 6.0, 200, None),
    ]
