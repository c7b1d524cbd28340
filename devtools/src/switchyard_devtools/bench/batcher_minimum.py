"""The yardstick of the batcher bench: the least consumer that keeps the batcher's contract.

One thread, one confluent-kafka consumer in its own group on the logs topic: take a batch,
parse each CloudEvent once, COPY the rows into a table shaped like ``logs`` (``LIKE logs
INCLUDING ALL``: same columns, primary key, indexes and checks), commit the transaction,
then commit the offsets synchronously. So every event is stored at least once, and a
redelivered one never becomes a second row, deduplicated as the PostgreSQL sink does it:
one row per id within a batch, and a COPY that the primary key refuses (a redelivery) is
redone through a staging table with ``ON CONFLICT (id) DO NOTHING``. Nothing else: no
validation beyond the table's, no second sink, metrics, breaker, retries or dead letters.
It gets the batcher's librdkafka fetch settings (configuration, not code: with
librdkafka's defaults tansu would be the limit of both).

Run by ``switchyard bench batcher`` as its own process; exits once TABLE holds EXPECTED
rows, IDLE_SECONDS after its last record, or on SIGTERM:

    python -m switchyard_devtools.bench.batcher_minimum DSN TABLE EXPECTED CONSUMER_JSON
"""

from __future__ import annotations

import io
import signal
import sys
import time
from typing import Any, cast

import orjson
import psycopg2
import psycopg2.errors
from confluent_kafka import Consumer, TopicPartition

COLUMNS = "id, service, level, message, timestamp, attributes, received_at"
IDLE_SECONDS = 15.0
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})


def row(value: bytes) -> tuple[str, str]:
    """(event id, COPY text row) of one log.received CloudEvent."""
    event = orjson.loads(value)
    data = event["data"]
    attributes = orjson.dumps(data["attributes"]).decode().replace("\\u0000", "\\ufffd")
    fields = (
        event["id"],
        data["service"],
        data["level"],
        data["message"],
        data["timestamp"],
        attributes,
        data["received_at"],
    )
    return event["id"], "\t".join(field.translate(_ESCAPES) for field in fields)


def store(connection: Any, table: str, rows: dict[str, str]) -> None:
    payload = ("\n".join(rows.values()) + "\n").encode()
    with connection.cursor() as cursor:
        try:
            cursor.copy_expert(f"COPY {table} ({COLUMNS}) FROM STDIN", io.BytesIO(payload))
        except psycopg2.errors.UniqueViolation:
            connection.rollback()
            cursor.execute(
                f"CREATE TEMP TABLE stage (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            cursor.copy_expert(f"COPY stage ({COLUMNS}) FROM STDIN", io.BytesIO(payload))
            cursor.execute(
                f"INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM stage "  # noqa: S608
                "ON CONFLICT (id) DO NOTHING"
            )
    connection.commit()


def main(dsn: str, table: str, expected: int, consumer_config: dict[str, Any]) -> None:
    max_batch = consumer_config.pop("max.batch")
    topic = consumer_config.pop("topic")
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, frame: stopping.append(number))
    connection = psycopg2.connect(dsn)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (LIKE logs INCLUDING ALL)")
    connection.commit()
    consumer = Consumer({**consumer_config, "enable.auto.commit": False})
    consumer.subscribe([topic])
    stored, last_record = 0, None
    try:
        while stored < expected and not stopping:
            messages = [m for m in consumer.consume(max_batch, 0.2) if m.error() is None]
            if not messages:
                if last_record and time.monotonic() - last_record > IDLE_SECONDS:
                    break  # records skipped by the broker never come (see the bench)
                continue
            last_record = time.monotonic()
            rows = dict(row(cast(bytes, message.value())) for message in messages)
            store(connection, table, rows)
            offsets: dict[int, int] = {}
            for message in messages:
                offsets[cast(int, message.partition())] = cast(int, message.offset()) + 1
            consumer.commit(
                offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                asynchronous=False,
            )
            stored += len(rows)
    finally:
        consumer.close()
        connection.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), orjson.loads(sys.argv[4]))
