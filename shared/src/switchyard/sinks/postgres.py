"""PostgreSQL sink: COPY straight into ``logs`` / ``health_pings`` / ``target_checks``,
deduplicated by id.

The fast path is one COPY into the table, as fast as a raw COPY. A redelivered event makes
that COPY fail on the primary key; only then the batch goes the slow way: COPY into a
temporary staging table, then ``INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING``. So
dedupe costs nothing in the common case and a redelivery never becomes a second row.
"""

from __future__ import annotations

import contextlib
import io
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, cast

import orjson
import psycopg2
import psycopg2.errors
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.db.engine import create_engine
from switchyard.errors import TransientError
from switchyard.sinks.base import Kind, Record

Formatter = Callable[[Any], str]
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r\x00]")
NULL = "\\N"


def text(value: Any) -> str:
    if value is None:
        return NULL
    string = str(value)
    return string.translate(_ESCAPES) if _NEEDS_ESCAPE.search(string) else string


def json(value: Any) -> str:
    if value is None:
        return NULL
    dumped = orjson.dumps(value).decode()
    if "\\u0000" in dumped:  # jsonb cannot hold NUL
        dumped = dumped.replace("\\u0000", "\\ufffd")
    return text(dumped)


def number(value: Any) -> str:
    return NULL if value is None else repr(value)


# kind -> (table, [(column, formatter)]); the id column comes first in every table.
TABLES: dict[Kind, tuple[str, list[tuple[str, Formatter]]]] = {
    "log": (
        "logs",
        [
            ("service", text),
            ("level", text),
            ("message", text),
            ("timestamp", text),
            ("attributes", json),
            ("received_at", text),
        ],
    ),
    "health": (
        "health_pings",
        [
            ("service", text),
            ("status", text),
            ("latency_ms", number),
            ("details", json),
            ("target_id", number),
            ("timestamp", text),
            ("received_at", text),
        ],
    ),
    "check": (
        "target_checks",
        [
            ("target_id", number),
            ("status", text),
            ("latency_ms", number),
            ("status_code", number),
            ("error", text),
            ("checked_at", text),
        ],
    ),
}


def copy_rows(kind: Kind, records: Sequence[Record]) -> bytes:
    """The records as COPY text rows, in the column order of :func:`column_list`.

    Nearly every value is a string without a tab, newline, backslash, CR or NUL, and then
    the plain join of the raw values is the COPY row. So the rows are joined raw and the
    whole text is checked at once (a few scans in C) instead of field by field; only rows
    that fail the check (or hold a None or a non-string) are formatted field by field.
    """
    tabs = len(TABLES[kind][1])
    raw = _RAW_ROWS.get(kind)
    candidates = raw(records) if raw is not None else [None] * len(records)
    if None not in candidates:
        text = "\n".join([*cast(list[str], candidates), ""])
        if _plain(text, tabs * len(records), len(records)):
            return text.encode()
    lines = [
        line if line is not None and _plain(line + "\n", tabs, 1) else _escaped_row(kind, record)
        for line, record in zip(candidates, records, strict=True)
    ]
    return "\n".join([*lines, ""]).encode()


def _plain(text: str, tabs: int, newlines: int) -> bool:
    """``text`` has exactly the separators expected and nothing COPY would unescape."""
    return (
        "\\" not in text
        and "\r" not in text
        and "\x00" not in text
        and text.count("\t") == tabs
        and text.count("\n") == newlines
    )


def _escaped_row(kind: Kind, record: Record) -> str:
    fields = record.fields
    values = [record.id]
    values.extend(formatter(fields.get(column)) for column, formatter in TABLES[kind][1])
    return "\t".join(values)


RawRows = Callable[[Sequence[Record]], list[str | None]]


def _raw_rows(kind: Kind) -> RawRows | None:
    """Rows of raw values joined (None where a value is not a plain string), for kinds
    whose columns are all text or JSON; None for other kinds."""
    columns = TABLES[kind][1]
    if any(formatter not in (text, json) for _, formatter in columns):
        return None
    values = operator.itemgetter(*(column for column, _ in columns))
    dumped = [index for index, (_, formatter) in enumerate(columns) if formatter is json]
    dumps = orjson.dumps

    def rows(records: Sequence[Record]) -> list[str | None]:
        lines: list[str | None] = []
        for record in records:
            try:
                row = [record.id, *values(record.fields)]
                for index in dumped:
                    if row[index + 1] is None:
                        raise TypeError  # SQL NULL, not JSON null
                    row[index + 1] = dumps(row[index + 1]).decode()
                lines.append("\t".join(row))
            except (KeyError, TypeError, orjson.JSONEncodeError):
                lines.append(None)
        return lines

    return rows


_RAW_ROWS = {kind: rows for kind in TABLES if (rows := _raw_rows(kind)) is not None}


def column_list(kind: Kind) -> str:
    return ", ".join(["id", *(f'"{column}"' for column, _ in TABLES[kind][1])])


class PostgresSink:
    name = "postgres"

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresSink:
        return cls(
            create_engine(
                settings,
                pool_size=max(2, settings.database_pool_size // 2),
                # No ping (a round trip) before every batch: a dead pooled connection fails
                # the COPY instead, write_batch invalidates it and the batch is retried.
                pool_pre_ping=False,
                connect_args={
                    "connect_timeout": 5,
                    "application_name": f"{settings.service_name}-sink",
                    # A dead server or a stuck COPY must fail the batch, not hang the worker.
                    "options": "-c statement_timeout=60000",
                    "keepalives": 1,
                    "keepalives_idle": 10,
                    "keepalives_interval": 5,
                    "keepalives_count": 3,
                },
            )
        )

    def write_batch(self, records: Sequence[Record]) -> None:
        by_kind: dict[Kind, dict[str, Record]] = {}
        for record in records:
            # The same event twice in one batch (a client retry) is one row.
            by_kind.setdefault(record.kind, {}).setdefault(record.id, record)
        if not by_kind:
            return
        payloads = {kind: copy_rows(kind, list(rows.values())) for kind, rows in by_kind.items()}
        try:
            # The pool raises the driver's own errors here, not SQLAlchemy's wrappers.
            connection = self.engine.raw_connection()
        except (sa.exc.DBAPIError, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            raise TransientError(f"PostgreSQL unreachable: {exc}".strip()) from exc
        try:
            self._write(connection.driver_connection, payloads)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            connection.invalidate()  # the pool must not hand this connection out again
            raise TransientError(f"PostgreSQL failed: {exc}".strip()) from exc
        finally:
            connection.close()

    def _write(self, connection: Any, payloads: dict[Kind, bytes]) -> None:
        try:
            with connection.cursor() as cursor:
                for kind, payload in payloads.items():
                    cursor.copy_expert(
                        f"COPY {TABLES[kind][0]} ({column_list(kind)}) FROM STDIN",
                        io.BytesIO(payload),
                        size=1 << 20,
                    )
            connection.commit()
        except psycopg2.errors.UniqueViolation:
            connection.rollback()
            self._write_deduplicated(connection, payloads)
        except BaseException:
            _rollback(connection)
            raise

    def _write_deduplicated(self, connection: Any, payloads: dict[Kind, bytes]) -> None:
        try:
            with connection.cursor() as cursor:
                for kind, payload in payloads.items():
                    table = TABLES[kind][0]
                    stage = f"stage_{table}"
                    # Temporary: no WAL, private to this session, gone at commit.
                    cursor.execute(
                        f"CREATE TEMP TABLE {stage} "
                        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
                    )
                    columns = column_list(kind)
                    cursor.copy_expert(
                        f"COPY {stage} ({columns}) FROM STDIN", io.BytesIO(payload), size=1 << 20
                    )
                    cursor.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608
                        f"FROM {stage} ON CONFLICT (id) DO NOTHING"
                    )
            connection.commit()
        except BaseException:
            _rollback(connection)
            raise

    def close(self) -> None:
        self.engine.dispose()


def _rollback(connection: Any) -> None:
    # On a broken connection rollback fails too; the original error is the one to report.
    with contextlib.suppress(psycopg2.Error):
        connection.rollback()
