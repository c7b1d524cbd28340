"""``logs.retention``: delete the logs older than N days (of one service, if named).

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
from switchyard.jobs.types import LogsRetentionPayload
from switchyard_job_worker.registry import JobContext, handler

BATCH_ROWS = 5_000
logs = cast(sa.Table, LogEntry.__table__)


@handler("logs.retention")
async def logs_retention(payload: LogsRetentionPayload, job: JobContext) -> dict[str, Any]:
    stopped = threading.Event()
    deadline = time.monotonic() + job.remaining()
    try:
        return await asyncio.to_thread(
            delete_old_logs, job.resources.engine, payload, deadline, stopped
        )
    finally:
        stopped.set()  # cancelled (timed out): the thread stops after its current batch


def delete_old_logs(
    engine: sa.Engine,
    payload: LogsRetentionPayload,
    deadline: float,
    stopped: threading.Event,
) -> dict[str, Any]:
    """Batches until none is left, ``stopped`` is set, or ``deadline`` (monotonic)."""
    with engine.connect() as connection:
        cutoff: datetime = connection.execute(
            sa.select(sa.func.now() - sa.func.make_interval(0, 0, 0, payload.days))
        ).scalar_one()
    victims = sa.select(logs.c.id).where(logs.c.timestamp < cutoff)
    if payload.service is not None:
        victims = victims.where(logs.c.service == payload.service)
    batch = sa.delete(logs).where(
        logs.c.id.in_(victims.order_by(logs.c.timestamp).limit(BATCH_ROWS).scalar_subquery())
    )
    deleted = batches = 0
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
            return _result(deleted, batches, cutoff, payload, complete=True)
    return _result(deleted, batches, cutoff, payload, complete=False)


def _result(
    deleted: int, batches: int, cutoff: datetime, payload: LogsRetentionPayload, *, complete: bool
) -> dict[str, Any]:
    return {
        "deleted": deleted,
        "batches": batches,
        "cutoff": cutoff.isoformat(),
        "service": payload.service,
        "complete": complete,
    }
