"""Gauges read from PostgreSQL: the dead-letter depth (jobs ``dead``, not retried yet).

Guarantee: the gauge is refreshed every ``every_seconds`` by each replica from the one
source of truth (the jobs table), so any replica's value is at most that old; a failed
read keeps the last value and is logged, it never stops the worker.
"""

from __future__ import annotations

from collections.abc import Callable

from switchyard import metrics
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger

log = get_logger(__name__)


class DeadLetterDepth:
    def __init__(self, count: Callable[[], int], stop: StopSignal, every_seconds: float = 30.0):
        self._count = count
        self._stop = stop
        self.every_seconds = every_seconds

    def run(self) -> None:
        while True:
            try:
                metrics.jobs_dead_letter_depth.set(self._count())
            except Exception as exc:
                log.warning("reading the dead-letter depth failed", error=f"{exc}"[:300])
            if self._stop.wait(self.every_seconds):
                return
