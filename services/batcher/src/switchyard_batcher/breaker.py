"""A circuit breaker per sink: after repeated failures, stop calling it for a while.

Closed: calls go through. After ``threshold`` consecutive dependency failures it opens:
calls fail at once with :class:`CircuitOpen` (a transient error, so the consumer keeps
its partitions paused and retries the same batch later) until ``reset_seconds`` passed.
Then one trial call goes through (half-open): success closes it, failure opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from switchyard.errors import TransientError
from switchyard.logging import get_logger

log = get_logger(__name__)


class CircuitOpen(TransientError):
    """The sink failed repeatedly; it is not called until the breaker lets a trial through."""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._trial_running else "open"

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go through now."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self._clock() - self._opened_at
            if self._trial_running or waited < self.reset_seconds:
                raise CircuitOpen(
                    f"sink {self.name}: circuit open after {self.failures} "
                    f"failures; next trial in "
                    f"{max(0.0, self.reset_seconds - waited):.1f}s"
                )
            self._trial_running = True

    def succeeded(self) -> None:
        """The sink answered (an error caused by the data counts: the sink is up)."""
        with self._lock:
            if self._opened_at is not None:
                log.info("circuit closed", sink=self.name)
            self.failures = 0
            self._opened_at = None
            self._trial_running = False

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial_running or (self._opened_at is None and self.failures >= self.threshold):
                if self._opened_at is None:
                    log.warning("circuit opened", sink=self.name, failures=self.failures)
                self._opened_at = self._clock()
                self._trial_running = False
