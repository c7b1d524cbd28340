"""logs.retention against real PostgreSQL: batches, the service filter, and a statement
timeout that really stops a delete stuck behind a lock."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import sqlalchemy.exc

from switchyard.jobs.types import LogsRetentionPayload
from switchyard_job_worker.handlers import logs_retention
from switchyard_job_worker.handlers.logs_retention import delete_old_logs, logs

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
