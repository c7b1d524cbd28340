"""The finisher: attempt results written in batches, one transaction per batch.

Guarantee: every result handed to :meth:`Finisher.submit` is written (the lease token
fences it: a result whose lease moved on is refused by the SQL, logged and dropped), or,
only when it cannot be, given up with its lease left to expire, so the leader's reaper
takes the job back: a job is never lost here. While PostgreSQL is down a batch is
retried with backoff, as long as it takes (at shutdown, until the flush deadline). A
result leaves the pool's *held* set (whose leases the heartbeat renews) only after that.
Results gather for ``gather_seconds`` (a few ms) so a burst costs one transaction.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

from switchyard import metrics
from switchyard.backoff import backoff_delay
from switchyard.errors import is_transient
from switchyard.jobs.records import AttemptResult
from switchyard.logging import get_logger

log = get_logger(__name__)

Write = Callable[[Sequence[AttemptResult]], list[AttemptResult]]  # -> the refused ones
Settled = Callable[[Sequence[int]], None]


class Finisher:
    def __init__(
        self,
        write: Write,
        settled: Settled,
        max_batch: int,
        gather_seconds: float,
        retry_base_seconds: float = 0.2,
        retry_cap_seconds: float = 5.0,
    ) -> None:
        self._write = write
        self._settled = settled
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self.retry_base = retry_base_seconds
        self.retry_cap = retry_cap_seconds
        self._queue: queue.Queue[AttemptResult] = queue.Queue()
        self._closing = threading.Event()
        self._give_up_at = float("inf")  # monotonic; set by close()
        self._given_up = 0
        self._thread = threading.Thread(target=self._loop, name="job-finisher", daemon=True)

    def start(self) -> Finisher:
        self._thread.start()
        return self

    def submit(self, result: AttemptResult) -> None:
        self._queue.put(result)

    def close(self, timeout: float) -> int:
        """Write what is queued, trying for at most ``timeout``; returns how many results
        were given up (their leases expire and the reaper retries those jobs)."""
        self._give_up_at = time.monotonic() + timeout
        self._closing.set()
        self._thread.join(timeout + 5.0)
        left = self._queue.qsize()
        if left:
            log.error("results not written at shutdown; their leases will expire", results=left)
        return left + self._given_up

    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            batch = [first]
            deadline = time.monotonic() + self.gather_seconds
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self._store(batch)

    def _store(self, batch: list[AttemptResult]) -> None:
        """Write ``batch``; retry while PostgreSQL is down; isolate a result it refuses."""
        attempt = 0
        while True:
            try:
                refused = self._write(batch)
            except Exception as exc:
                if not is_transient(exc):
                    if len(batch) > 1:
                        for result in batch:
                            self._store([result])
                    else:
                        self._give_up(batch, exc)
                    return
                attempt += 1
                delay = backoff_delay(attempt, self.retry_base, self.retry_cap)
                if time.monotonic() + delay > self._give_up_at:
                    self._give_up(batch, exc)
                    return
                log.warning(
                    "writing job results failed; retrying",
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    attempt=attempt,
                    results=len(batch),
                )
                time.sleep(delay)
                continue
            self._account(batch, refused)
            return

    def _account(self, batch: list[AttemptResult], refused: list[AttemptResult]) -> None:
        stale = {r.job.lease_token for r in refused}
        for result in batch:
            job = result.job
            if job.lease_token in stale:
                log.warning(
                    "job result refused: its lease had moved on",
                    job_id=job.id,
                    attempt=job.attempt,
                    outcome=result.outcome,
                )
                continue
            metrics.jobs_processed_total.labels(job.type, result.outcome).inc()
            if result.outcome != "succeeded":
                if job.attempt >= job.max_attempts:
                    metrics.worker_failures_total.labels("jobs").inc()
                    log.error("job dead", job_id=job.id, attempts=job.attempt, error=result.error)
                else:
                    metrics.worker_retries_total.labels("jobs").inc()
        self._settled([r.job.lease_token for r in batch])

    def _give_up(self, batch: list[AttemptResult], error: Exception) -> None:
        self._given_up += len(batch)
        for result in batch:
            log.error(
                "job result not written; its lease will expire and the job run again",
                job_id=result.job.id,
                attempt=result.job.attempt,
                outcome=result.outcome,
                error=f"{type(error).__name__}: {error}"[:300],
            )
        self._settled([r.job.lease_token for r in batch])
