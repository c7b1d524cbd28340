"""The checker's side of targets: load its shards' targets, save progress, and record a
change of status exactly once with its ``target.down`` / ``target.up`` event.

Guarantee: every write names the shard's lease token and changes nothing unless this
replica still holds that lease, so a replica that lost a shard (paused, cut off) never
writes over its successor. A change is one transaction: ``UPDATE ... WHERE status IS
DISTINCT FROM <new>`` plus its outbox event; a second replica, a redelivery or a restart
finds the status already changed and announces nothing. An incident's id is chosen when
the target goes down and carried by the ``target.up`` that ends it, so a subscriber can
pair them; event ids are derived from it (``uuid5``) so a duplicate is recognisable.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import sqlalchemy as sa

from switchyard.db.models import OutboxEvent
from switchyard.db.models import targets as models
from switchyard.events import TYPE_HEADER, envelope
from switchyard.outbox.store import NOTIFY_CHANNEL as OUTBOX_CHANNEL
from switchyard.targets.records import Change, Progress, TargetRow
from switchyard.targets.store import as_target

targets = cast(sa.Table, models.Target.__table__)
SOURCE = "switchyard/health-checker"
MAX_ERROR_CHARS = 2_000
# "We still hold this target's shard", for the lease token in a column or a parameter.
_HOLDS_V = (
    "EXISTS (SELECT 1 FROM checker_shards s WHERE s.shard = targets.shard"
    " AND s.owner = :me AND s.token = v.token AND s.expires_at > now())"
)
_HOLDS_PARAM = (
    "EXISTS (SELECT 1 FROM checker_shards s WHERE s.shard = targets.shard"
    " AND s.owner = :me AND s.token = :token AND s.expires_at > now())"
)


def load(engine: sa.Engine, shards: Collection[int]) -> list[TargetRow]:
    if not shards:
        return []
    with engine.connect() as connection:
        rows = connection.execute(sa.select(targets).where(targets.c.shard.in_(list(shards))))
        return [as_target(row) for row in rows]


def load_ids(engine: sa.Engine, ids: Collection[int]) -> dict[int, TargetRow | None]:
    """The targets named by change notices; None for one that was deleted."""
    found: dict[int, TargetRow | None] = dict.fromkeys(ids)
    if ids:
        with engine.connect() as connection:
            for row in connection.execute(sa.select(targets).where(targets.c.id.in_(list(ids)))):
                found[row.id] = as_target(row)
    return found


def save_progress(
    engine: sa.Engine, items: Sequence[Progress], me: str, tokens: dict[int, int]
) -> int:
    """Counters and last check of many targets in one statement; only for shards we
    hold, and never older over newer. Returns the rows written."""
    items = [item for item in items if item.shard in tokens]
    if not items:
        return 0
    with engine.begin() as connection:
        written = connection.execute(
            sa.text(
                # Rows locked in ascending id first, as an apply locks them: without an
                # order, this and a concurrent multi-row write deadlocked (measured at
                # 2,000 targets during `targets apply`).
                "WITH locked AS (SELECT id FROM targets WHERE id = ANY(CAST(:ids AS bigint[]))"  # noqa: S608
                " ORDER BY id FOR UPDATE)"
                " UPDATE targets SET consecutive_failures = v.failures,"
                " consecutive_successes = v.successes, last_checked_at = v.checked_at,"
                " last_latency_ms = v.latency, last_status_code = v.code, last_error = v.error"
                " FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS bigint[]),"
                "  CAST(:failures AS int[]), CAST(:successes AS int[]),"
                "  CAST(:checked AS timestamptz[]), CAST(:latency AS float8[]),"
                "  CAST(:codes AS int[]), CAST(:errors AS text[]))"
                "  AS v(id, token, failures, successes, checked_at, latency, code, error)"
                " WHERE targets.id = v.id AND targets.id IN (SELECT id FROM locked)"
                " AND (targets.last_checked_at IS NULL"
                " OR targets.last_checked_at <= v.checked_at)"
                " AND " + _HOLDS_V
            ),
            {
                "me": me,
                "ids": [i.target_id for i in items],
                "tokens": [tokens[i.shard] for i in items],
                "failures": [i.consecutive_failures for i in items],
                "successes": [i.consecutive_successes for i in items],
                "checked": [i.checked_at for i in items],
                "latency": [i.latency_ms for i in items],
                "codes": [i.status_code for i in items],
                "errors": [_error(i.error) for i in items],
            },
        ).rowcount
    return int(written)


def record_change(
    engine: sa.Engine, change: Change, me: str, token: int, topic: str
) -> TargetRow | None:
    """Move the target to ``change.status`` and announce it, once; None if it already
    had that status or we no longer hold its shard (nothing is announced then).

    ``unknown → up`` (a new target's first success) is recorded and not announced: no
    incident ends there. ``up``/``unknown → down`` opens ``change.incident_id``;
    ``down → up`` closes the incident the target had."""
    with engine.begin() as connection:
        before = connection.execute(
            sa.select(targets.c.status, targets.c.incident_id, targets.c.status_changed_at)
            .where(targets.c.id == change.target_id)
            .with_for_update()
        ).one_or_none()
        if before is None or before.status == change.status:
            return None
        incident = change.incident_id if change.status == "down" else before.incident_id
        row = connection.execute(
            sa.text(
                "UPDATE targets SET status = :status, status_changed_at = :at,"  # noqa: S608
                " incident_id = :incident, consecutive_failures = :failures,"
                " consecutive_successes = :successes, last_checked_at = :at,"
                " last_error = :error"
                " WHERE id = :id AND status IS DISTINCT FROM :status AND "
                + _HOLDS_PARAM
                + " RETURNING *"
            ),
            {
                "id": change.target_id,
                "status": change.status,
                "at": change.checked_at,
                "incident": incident if change.status == "down" else None,
                "failures": change.consecutive if change.status == "down" else 0,
                "successes": change.consecutive if change.status == "up" else 0,
                "error": _error(change.error),
                "me": me,
                "token": token,
            },
        ).one_or_none()
        if row is None:
            return None
        target = as_target(row)
        if change.status == "down" or before.status == "down":
            _announce(connection, topic, target, change, str(incident), before)
    return target


def _announce(
    connection: sa.Connection,
    topic: str,
    target: TargetRow,
    change: Change,
    incident: str,
    before: Any,
) -> None:
    event_type = f"target.{change.status}"
    event_id = str(uuid.uuid5(uuid.UUID(incident), event_type))
    data: dict[str, Any] = {
        "target_id": target.id,
        "name": target.name,
        "url": target.url,
        "status": change.status,
        "incident_id": incident,
        "checked_at": change.checked_at.isoformat(),
        "consecutive": change.consecutive,
    }
    if change.status == "down":
        data["error"] = _error(change.error)
    elif before.status_changed_at is not None:
        data["down_since"] = before.status_changed_at.isoformat()
        data["down_seconds"] = round(
            (change.checked_at - before.status_changed_at).total_seconds(), 3
        )
    time = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    value = envelope(event_id, SOURCE, event_type, time, data, subject=str(target.id))
    connection.execute(
        sa.insert(OutboxEvent).values(
            event_id=event_id,
            topic=topic,
            key=str(target.id),
            payload=orjson.dumps(value),
            headers={TYPE_HEADER: event_type},
        )
    )
    connection.execute(sa.select(sa.func.pg_notify(OUTBOX_CHANNEL, "")))


def _error(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_CHARS]
