"""Periodic chores beside the consumer: the products_by_status gauge, the temp sweep, and
requeueing products whose event was lost.

One daemon thread. A failing chore (PostgreSQL down, a disk error) is logged and tried
again at its next turn; it never stops the worker.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

from switchyard import metrics
from switchyard.config import ImageWorkerSettings
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger
from switchyard_image_worker.products import ProductRows
from switchyard_image_worker.store import MediaStore

log = get_logger(__name__)
REQUEUE_EVERY_SECONDS = 60.0


def refresh_status_gauge(rows: ProductRows) -> None:
    for status, count in rows.count_by_status().items():
        metrics.products_by_status.labels(status).set(count)


def requeue(rows: ProductRows, older_than_seconds: float, topic: str) -> list[int]:
    ids = rows.requeue_stale(older_than_seconds, topic)
    if ids:
        log.warning("unfinished products requeued", products=ids[:20], count=len(ids))
    return ids


def sweep(store: MediaStore, min_age_seconds: float) -> int:
    removed = store.sweep(min_age_seconds)
    if removed:
        log.info("temp files swept", removed=removed, media_root=str(store.root))
    return removed


class Housekeeping:
    def __init__(
        self,
        rows: ProductRows,
        store: MediaStore,
        settings: ImageWorkerSettings,
        stop: StopSignal,
        topic: str,
    ) -> None:
        self._chores: list[tuple[str, float, Callable[[], object]]] = [
            (
                "products_by_status",
                settings.status_refresh_seconds,
                lambda: refresh_status_gauge(rows),
            ),
            (
                "sweep",
                settings.sweep_interval_seconds,
                lambda: sweep(store, settings.sweep_min_age_seconds),
            ),
        ]
        if settings.requeue_after_seconds > 0:
            self._chores.append(
                (
                    "requeue",
                    min(REQUEUE_EVERY_SECONDS, settings.requeue_after_seconds),
                    lambda: requeue(rows, settings.requeue_after_seconds, topic),
                )
            )
        self._stop = stop
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run,),
            name="housekeeping",
            daemon=True,
        )

    def start(self) -> Housekeeping:
        self._thread.start()
        return self

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        # The gauge at once; the sweep ran at start already, before anything was consumed.
        started = time.monotonic()
        due = {
            name: started + (interval if name == "sweep" else 0.0)
            for name, interval, _ in self._chores
        }
        while not self._stop.is_set():
            now = time.monotonic()
            for name, interval, chore in self._chores:
                if now < due[name]:
                    continue
                due[name] = now + interval
                try:
                    chore()
                except Exception as exc:
                    log.warning("housekeeping failed", chore=name, error=str(exc)[:300])
            self._stop.wait(max(0.05, min(due.values()) - time.monotonic()))
