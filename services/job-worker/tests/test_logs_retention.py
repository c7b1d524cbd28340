"""logs.retention and checks.retention against real PostgreSQL: batches, the service and
target filters, and a statement timeout that really stops a delete stuck behind a lock."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import sqlalchemy.exc

from switchyard.jobs.types import ChecksRetentionPayload, LogsRetentionPayload
from switchyard_job_worker.handlers import logs_retention
from switchyard_job_worker.handlers.logs_retention import (
    checks,
    delete_old_checks,
    delete_old_logs,
    logs,
)

pytestmark = pytest.mark.integration


def add_logs(engine: sa.Engine, service: str, age: timedelta, count: int) -> None:
    at = datetime.now(UTC) - age
    rows = [
        {
            "id": uuid.uuid4(),
            "service": service,
            "level": "info",
            "message": f"line {n}",
            "timestamp": at,
            "attributes": {},
            "received_at": at,
        }
        for n in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(logs), rows)


def count(engine: sa.Engine, service: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(logs).where(logs.c.service == service)
            ).scalar_one()
        )


def test_old_logs_go_in_batches_and_only_those_of_the_service_named(
    own_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_retention, "BATCH_ROWS", 2)
    add_logs(own_engine, "api", timedelta(days=10), 5)
    add_logs(own_engine, "api", timedelta(hours=1), 2)
    add_logs(own_engine, "batcher", timedelta(days=10), 3)
    far = time.monotonic() + 60

    result = delete_old_logs(
        own_engine, LogsRetentionPayload(days=5, service="api"), far, threading.Event()
    )
    assert (result["deleted"], result["batches"], result["complete"]) == (5, 3, True)
    assert (count(own_engine, "api"), count(own_engine, "batcher")) == (2, 3)

    result = delete_old_logs(own_engine, LogsRetentionPayload(days=5), far, threading.Event())
    assert (result["deleted"], result["complete"]) == (3, True)
    assert (count(own_engine, "api"), count(own_engine, "batcher")) == (2, 0)

    stopped = threading.Event()
    stopped.set()  # the attempt was cancelled: no batch starts
    add_logs(own_engine, "api", timedelta(days=10), 1)
    result = delete_old_logs(own_engine, LogsRetentionPayload(days=5), far, stopped)
    assert (result["deleted"], result["complete"]) == (0, False)


def test_the_statement_timeout_stops_a_delete_stuck_behind_a_lock(own_engine: sa.Engine) -> None:
    add_logs(own_engine, "locked", timedelta(days=10), 3)
    with own_engine.connect() as holder:
        holder.execute(sa.select(logs.c.id).where(logs.c.service == "locked").with_for_update())
        with pytest.raises(sqlalchemy.exc.OperationalError, match="statement timeout"):
            delete_old_logs(
                own_engine,
                LogsRetentionPayload(days=5, service="locked"),
                time.monotonic() + 1.0,
                threading.Event(),
            )
        holder.rollback()
    assert count(own_engine, "locked") == 3


def add_checks(engine: sa.Engine, target_id: int, age: timedelta, count: int) -> None:
    at = datetime.now(UTC) - age
    rows = [
        {"id": uuid.uuid4(), "target_id": target_id, "status": "up", "checked_at": at}
        for _ in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(checks), rows)


def checks_of(engine: sa.Engine, target_id: int) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count())
                .select_from(checks)
                .where(checks.c.target_id == target_id)
            ).scalar_one()
        )


def test_old_probe_results_go_and_only_those_of_the_target_named(
    own_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_retention, "BATCH_ROWS", 2)
    first, second = 900_000_001, 900_000_002
    add_checks(own_engine, first, timedelta(days=10), 3)
    add_checks(own_engine, first, timedelta(hours=1), 2)
    add_checks(own_engine, second, timedelta(days=10), 1)
    far = time.monotonic() + 60

    result = delete_old_checks(
        own_engine, ChecksRetentionPayload(days=5, target_id=first), far, threading.Event()
    )
    assert (result["deleted"], result["batches"], result["complete"]) == (3, 2, True)
    assert (checks_of(own_engine, first), checks_of(own_engine, second)) == (2, 1)

    result = delete_old_checks(own_engine, ChecksRetentionPayload(days=5), far, threading.Event())
    assert result["deleted"] >= 1 and result["complete"]
    assert (checks_of(own_engine, first), checks_of(own_engine, second)) == (2, 0)
