"""End-to-end latency of the logs pipeline, accepted at the API -> row readable.

Marker events (one-event requests whose ``timestamp`` falls on 2000-01-01, a day no other
bench event has) are mixed into paced load. A reader polls PostgreSQL every 20 ms for the
markers through the ``(timestamp, id)`` index (a few hundred index entries, not the
table) and notes when each one was first readable: the start of the first query whose
snapshot held it. Latency is that instant minus the row's ``received_at``, stamped by the
API when it accepted the request (same machine, same clock). It errs long by up to one
poll interval, never short, and it counts the commit, which ``stored_at`` (the batch's
transaction start) does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType

import orjson
import sqlalchemy as sa

from switchyard_devtools.load.cli import requests as load_requests
from switchyard_devtools.load.generator import Request, percentile

MARKER_DAY = datetime(2000, 1, 1, tzinfo=UTC)
MARKERS_PER_SECOND = 40
POLL_SECONDS = 0.02


def paced_with_markers(
    url: str, events_per_second: float, seconds: float, services: list[str]
) -> Iterator[Request]:
    """Requests of 100 events at ``events_per_second`` for ``seconds``, a marker
    (a one-event request) after every few, about MARKERS_PER_SECOND of them a second."""
    per_second = events_per_second / 100
    every = max(1, round(per_second / MARKERS_PER_SECOND))
    bulk = load_requests("logs", url, int(per_second * seconds) * 100, 100, services)
    started = time.perf_counter()
    for index, request in enumerate(bulk):
        delay = started + index / per_second - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # blocks the load loop briefly; the API stamps received_at
        yield request
        if index % every == 0:
            yield _marker(url, index // every, services)


def _marker(url: str, number: int, services: list[str]) -> Request:
    event = {
        "service": services[number % len(services)],  # the bulk's partitions
        "level": "info",
        "message": f"marker {number}",
        "timestamp": (MARKER_DAY + timedelta(microseconds=number)).isoformat(),
    }
    return Request("POST", f"{url}/logs", orjson.dumps(event))


class Markers:
    """Polls for marker rows while the block runs; ``latencies()`` in seconds."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._readable: dict[datetime, float] = {}  # marker timestamp -> latency
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="markers", daemon=True)

    def __enter__(self) -> Markers:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        query = sa.text(
            'SELECT "timestamp", extract(epoch FROM received_at) FROM logs '
            'WHERE "timestamp" >= :day AND "timestamp" < :next'
        )
        window = {"day": MARKER_DAY, "next": MARKER_DAY + timedelta(days=1)}
        with self._engine.connect() as connection:
            while not self._stop.is_set():
                asked = time.time()
                for stamp, received in connection.execute(query, window):
                    self._readable.setdefault(stamp, asked - float(received))
                connection.commit()  # a fresh snapshot for the next poll
                self._stop.wait(POLL_SECONDS)

    def latencies(self) -> list[float]:
        return list(self._readable.values())

    def percentiles_ms(self) -> tuple[float, float, float]:
        values = self.latencies()
        p50, p95, p99 = (percentile(values, q) * 1000 for q in (50, 95, 99))
        return p50, p95, p99
