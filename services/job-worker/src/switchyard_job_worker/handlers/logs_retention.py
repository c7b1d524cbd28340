"""Retention: ``logs.retention`` deletes logs, ``checks.retention`` deletes probe results,
each older than N days (of one service / one target, if named).

Guarantee: rows go in batches of :data:`BATCH_ROWS`, each its own short transaction, so
no lock is held long and the ingest path keeps writing; each batch runs with
``statement_timeout`` set to the time the attempt has left, so a timed-out attempt
really stops in PostgreSQL, and the thread stops between batches once the attempt is
cancelled. Re-running is harmless: what was deleted stays deleted, the next run goes on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from switchyard.db.models.logs import LogEntry
from switchyard.db.models.targets import TargetCheck
from switchyard.jobs.types import ChecksRetentionPayload, LogsRetentionPayload
from switchyard_job_worker.registry import JobContext, handler

BATCH_ROWS = 5_000
logs = cast(sa.Table, LogEntry.__table__)
checks = cast(sa.Table, TargetCheck.__table__)


@handler("logs.retention")
async def logs_retention(payload: LogsRetentionPayload, job: JobContext) -> dict[str, Any]:
    return await _in_thread(delete_old_logs, job, payload)


@handler("checks.retention")
async def checks_retention(payload: ChecksRetentionPayload, job: JobContext) -> dict[str, Any]:
    return await _in_thread(delete_old_checks, job, payload)


async def _in_thread(delete: Any, job: JobContext, payload: Any) -> dict[str, Any]:
    stopped = threading.Event()
    deadline = time.monotonic() + job.remaining()
    try:
        result: dict[str, Any] = await asyncio.to_thread(
            delete, job.resources.engine, payload, deadline, stopped
        )
        return result
    finally:
        stopped.set()  # cancelled (timed out): the thread stops after its current batch


def delete_old_logs(
    engine: sa.Engine, payload: LogsRetentionPayload, deadline: float, stopped: threading.Event
) -> dict[str, Any]:
    only = None if payload.service is None else logs.c.service == payload.service
    result = _delete_older(
        engine, logs.c.id, logs.c.timestamp, only, payload.days, deadline, stopped
    )
    return result | {"service": payload.service}


def delete_old_checks(
    engine: sa.Engine, payload: ChecksRetentionPayload, deadline: float, stopped: threading.Event
) -> dict[str, Any]:
    only = None if payload.target_id is None else checks.c.target_id == payload.target_id
    result = _delete_older(
        engine, checks.c.id, checks.c.checked_at, only, payload.days, deadline, stopped
    )
    return result | {"target_id": payload.target_id}


def _delete_older(
    engine: sa.Engine,
    key: sa.Column[Any],
    at: sa.Column[Any],
    only: sa.ColumnElement[bool] | None,
    days: int,
    deadline: float,
    stopped: threading.Event,
) -> dict[str, Any]:
    """Batches until none is left, ``stopped`` is set, or ``deadline`` (monotonic)."""
    with engine.connect() as connection:
        cutoff: datetime = connection.execute(
            sa.select(sa.func.now() - sa.func.make_interval(0, 0, 0, days))
        ).scalar_one()
    victims = sa.select(key).where(at < cutoff)
    if only is not None:
        victims = victims.where(only)
    batch = sa.delete(key.table).where(
        key.in_(victims.order_by(at).limit(BATCH_ROWS).scalar_subquery())
    )
    deleted = batches = 0
    complete = False
    while not stopped.is_set():
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        with engine.begin() as connection:
            connection.execute(
                sa.select(sa.func.set_config("statement_timeout", str(left_ms), True))
            )
            count = connection.execute(batch).rowcount
        deleted += count
        batches += 1
        if count < BATCH_ROWS:
            complete = True
            break
    return {
        "deleted": deleted,
        "batches": batches,
        "cutoff": cutoff.isoformat(),
        "complete": complete,
    }
