"""The yardstick of the jobs bench: the least code that gives the same guarantee.

A row per job in PostgreSQL, updated when the job starts and when it ends; a Kafka
message per job; the consumer's offset committed only after the row says the job
ended. So a crash anywhere runs the job again (at least once) and never loses it, and a
redelivered message does not run a job whose row says it succeeded. Nothing else: one
process, one loop, one job at a time, autocommit statements, librdkafka's own offset
commits of the offsets this loop stored. No leases, retries, limits, schedules,
metrics or outbox; the enqueue commits the row, then produces the message.

Run by ``switchyard bench jobs`` as its own process(es):

    python -m switchyard_devtools.bench.jobs_baseline setup DSN
    python -m ... enqueue DSN BOOTSTRAP TOPIC COUNT [PER_S BATCH]
    python -m ... work DSN BOOTSTRAP TOPIC GROUP

``enqueue`` commits BATCH rows, then produces their messages (PER_S: jobs per second,
0 for as fast as it goes) and prints the ids, one a line; ``work`` runs until SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid

import psycopg2
from confluent_kafka import Consumer, Producer

TABLE = "baseline_jobs"


def setup(dsn: str) -> None:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            " id uuid PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL,"
            " status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
            " started_at timestamptz, finished_at timestamptz, worker text, result jsonb)"
        )
    connection.close()


def enqueue(
    dsn: str, bootstrap: str, topic: str, count: int, per_second: float = 0, batch: int = 1
) -> None:
    connection = psycopg2.connect(dsn)
    cursor = connection.cursor()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    started = time.perf_counter()
    for first in range(0, count, batch):
        if per_second:
            time.sleep(max(0.0, started + first / per_second - time.perf_counter()))
        ids = [str(uuid.uuid4()) for _ in range(min(batch, count - first))]
        for job_id in ids:
            cursor.execute(
                f"INSERT INTO {TABLE} (id, type, payload, status) "  # noqa: S608
                "VALUES (%s, 'echo', %s, 'queued')",
                (job_id, json.dumps({"bench": True})),
            )
        connection.commit()  # the rows exist before their messages do
        for job_id in ids:
            producer.produce(topic, key=job_id, value=job_id)
            producer.poll(0)
            print(job_id)
    producer.flush()
    connection.close()


def work(dsn: str, bootstrap: str, topic: str, group: str) -> None:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    cursor = connection.cursor()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            # Offsets are stored by this loop once a job's row says it ended; librdkafka
            # commits the stored ones (in the background and on close).
            "enable.auto.offset.store": False,
        }
    )
    consumer.subscribe([topic])
    worker = str(os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            job_id = (message.value() or b"").decode()
            cursor.execute(
                f"UPDATE {TABLE} SET status = 'running', started_at = now(), worker = %s "  # noqa: S608
                "WHERE id = %s AND status <> 'succeeded' RETURNING payload",
                (worker, job_id),
            )
            row = cursor.fetchone()
            if row is not None:
                result = row[0]  # the job: echo returns its payload
                cursor.execute(
                    f"UPDATE {TABLE} SET status = 'succeeded', finished_at = now(), "  # noqa: S608
                    "result = %s WHERE id = %s",
                    (json.dumps(result), job_id),
                )
            consumer.store_offsets(message)
    finally:
        consumer.close()
        connection.close()


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "setup":
        setup(args[0])
    elif command == "enqueue":
        per_second, batch = (float(args[4]), int(args[5])) if args[4:] else (0.0, 1)
        enqueue(args[0], args[1], args[2], int(args[3]), per_second, batch)
    elif command == "work":
        work(args[0], args[1], args[2], args[3])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
