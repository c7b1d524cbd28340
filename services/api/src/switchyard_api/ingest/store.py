"""Reading logs and health pings back: newest first, keyset pagination on (timestamp, id)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from switchyard.db.models.logs import HealthPing, LogEntry

logs = LogEntry.__table__
pings = HealthPing.__table__
# JSON columns come back as text and are parsed here: the driver's parser (orjson) refuses
# numbers jsonb holds (beyond 64 bits, beyond a double), and no stored row may fail a read.
LOG_COLUMNS: list[ColumnElement[Any]] = [
    *(logs.c[name] for name in ("id", "service", "level", "message", "timestamp")),
    sa.cast(logs.c.attributes, sa.Text).label("attributes"),
    logs.c.received_at,
]
PING_COLUMNS: list[ColumnElement[Any]] = [
    *(pings.c[name] for name in ("id", "service", "status", "latency_ms")),
    sa.cast(pings.c.details, sa.Text).label("details"),
    *(pings.c[name] for name in ("target_id", "timestamp", "received_at")),
]
JSON_COLUMNS = ("attributes", "details")


def _parse_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # The standard library takes any size of integer, and 1e400 as infinity (which
        # the response serialiser writes as null).
        return json.loads(text)


def _row(row: sa.RowMapping) -> dict[str, Any]:
    item = dict(row)
    for name in JSON_COLUMNS:
        if name in item:
            item[name] = _parse_json(item[name])
    return item


Position = tuple[datetime, uuid.UUID]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page(
    table: sa.FromClause,
    columns: list[ColumnElement[Any]],
    conditions: list[sa.ColumnElement[bool]],
    after: Position | None,
    limit: int,
) -> sa.Select[Any]:
    if after is not None:
        conditions.append(sa.tuple_(table.c.timestamp, table.c.id) < sa.tuple_(*after))
    return (
        sa.select(*columns)
        .where(*conditions)
        .order_by(table.c.timestamp.desc(), table.c.id.desc())
        .limit(limit)
    )


class IngestStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _fetch(self, statement: sa.Select[Any]) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [_row(row) for row in connection.execute(statement).mappings()]

    def logs(
        self,
        *,
        service: str | None,
        level: str | None,
        since: datetime | None,
        until: datetime | None,
        q: str | None,
        after: Position | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        conditions = _time_range(logs, since, until)
        if service is not None:
            conditions.append(logs.c.service == service)
        if level is not None:
            conditions.append(logs.c.level == level)
        if q is not None:
            conditions.append(logs.c.message.ilike(_like_pattern(q), escape="\\"))
        return self._fetch(_page(logs, LOG_COLUMNS, conditions, after, limit))

    def pings(
        self,
        *,
        service: str | None,
        since: datetime | None,
        until: datetime | None,
        after: Position | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        conditions = _time_range(pings, since, until)
        if service is not None:
            conditions.append(pings.c.service == service)
        return self._fetch(_page(pings, PING_COLUMNS, conditions, after, limit))


def _time_range(
    table: sa.FromClause, since: datetime | None, until: datetime | None
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if since is not None:
        conditions.append(table.c.timestamp >= since)
    if until is not None:
        conditions.append(table.c.timestamp < until)
    return conditions
