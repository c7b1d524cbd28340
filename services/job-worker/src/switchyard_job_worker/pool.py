"""The pool: claimed jobs run as asyncio tasks on one event loop thread.

Guarantees:

* At most ``JOBS__POOL_SIZE`` handlers run at once; :meth:`JobPool.has_room` tells the
  consumer whether to claim more (it pauses its partitions, still polling, while not).
* Each attempt runs under ``asyncio.timeout(timeout_seconds)``: when that passes the
  handler is cancelled (its effect stops at its next ``await``) and the attempt is
  reported ``timed_out``, a failed attempt. What a handler returns is stored as JSON,
  cut down to a note when over ``JOBS__MAX_RESULT_BYTES``.
* A job handed to :meth:`~JobPool.submit` is *held* (the heartbeat renews its lease)
  until exactly one of: its result was stored (:meth:`~JobPool.settled`, by the
  finisher); its lease was lost (:meth:`~JobPool.lost`: the task is cancelled and nothing
  is reported, the reaper owns the job now); or it was interrupted by a shutdown
  (:meth:`~JobPool.drain` returns it, to be released back to ``queued``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson
from pydantic import ValidationError

from switchyard import metrics, tracing
from switchyard.config import Settings
from switchyard.jobs.records import AttemptOutcome, AttemptResult, ClaimedJob
from switchyard.logging import bind_context, get_logger
from switchyard_job_worker.registry import (
    JobContext,
    JobFailed,
    JobFailedForGood,
    Registry,
    Resources,
)

log = get_logger(__name__)
T = TypeVar("T")
MAX_ERROR_CHARS = 2_000


@dataclass
class _Held:
    job: ClaimedJob
    claimed_at: float  # monotonic: the lease was taken no later than this
    task: asyncio.Task[None] | None = None
    started: bool = False
    finished: bool = False  # reported; waits for the finisher to store it
    cancelled: Literal["lost", "interrupted"] | None = None


class JobPool:
    def __init__(
        self,
        registry: Registry,
        resources: Resources,
        settings: Settings,
        report: Callable[[AttemptResult], None],
    ) -> None:
        self.registry = registry
        self.resources = resources
        self.settings = settings
        self.size = settings.jobs.pool_size
        self._report = report
        self._lock = threading.Lock()
        self._held: dict[int, _Held] = {}
        self._unfinished = 0
        self._closing = False
        self._slots = asyncio.Semaphore(self.size)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="job-pool", daemon=True)

    def start(self) -> JobPool:
        self._thread.start()
        return self

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the pool's loop and wait for it (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()

    # -- the consumer's side ---------------------------------------------------------
    def has_room(self) -> bool:
        with self._lock:
            return not self._closing and self._unfinished < self.size

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        """Run ``jobs`` (claimed: their leases are ours) as soon as slots allow."""
        now = time.monotonic()
        with self._lock:
            for job in jobs:
                self._held[job.lease_token] = _Held(job, now)
                self._unfinished += 1
        for job in jobs:
            self.loop.call_soon_threadsafe(self._spawn, job.lease_token)

    # -- the heartbeat's and the finisher's side --------------------------------------
    def held_leases(self) -> dict[int, float]:
        """Lease token -> when it was claimed (monotonic), for every job held."""
        with self._lock:
            return {token: held.claimed_at for token, held in self._held.items()}

    def lost(self, tokens: Sequence[int] | set[int], why: str) -> None:
        """The leases of ``tokens`` are gone: stop those jobs and report nothing."""
        with self._lock:
            gone = [self._held.pop(t) for t in tokens if t in self._held]
            for held in gone:
                held.cancelled = "lost"
                if not held.finished:
                    self._unfinished -= 1
        for held in gone:
            if held.finished:  # stored meanwhile (the finish cleared the lease)
                continue
            if held.task is not None:
                self.loop.call_soon_threadsafe(held.task.cancel)
            log.warning(
                "job lease lost; attempt abandoned",
                job_id=held.job.id,
                job_type=held.job.type,
                attempt=held.job.attempt,
                reason=why,
                started=held.started,
            )

    def settled(self, tokens: Sequence[int]) -> None:
        """The results (or releases) of ``tokens`` are stored: no lease to renew."""
        with self._lock:
            for token in tokens:
                self._held.pop(token, None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._held)

    # -- shutdown --------------------------------------------------------------------
    def drain(self, grace_seconds: float) -> list[ClaimedJob]:
        """Start nothing new; let running jobs finish within ``grace_seconds``; cancel
        the rest. Returns the jobs interrupted (held until released)."""
        return self.run(self._drain(grace_seconds))

    async def _drain(self, grace_seconds: float) -> list[ClaimedJob]:
        with self._lock:
            self._closing = True
        self._interrupt(lambda h: not h.started)
        running = [h.task for h in self._snapshot() if h.task and not h.task.done()]
        if running:
            log.info("waiting for running jobs", jobs=len(running), grace_seconds=grace_seconds)
            await asyncio.wait(running, timeout=max(0.0, grace_seconds))
        self._interrupt(lambda h: True)
        unwinding = [h.task for h in self._snapshot() if h.task and not h.task.done()]
        if unwinding:
            await asyncio.wait(unwinding, timeout=5.0)  # handlers unwinding a cancellation
        return [h.job for h in self._snapshot() if h.cancelled == "interrupted"]

    def _snapshot(self) -> list[_Held]:
        with self._lock:
            return list(self._held.values())

    def _interrupt(self, which: Callable[[_Held], bool]) -> None:
        with self._lock:
            for held in self._held.values():
                task = held.task
                if task is not None and not task.done() and held.cancelled is None and which(held):
                    held.cancelled = "interrupted"
                    task.cancel()

    # -- on the loop -----------------------------------------------------------------
    def _spawn(self, token: int) -> None:
        with self._lock:  # so lost() sees either no entry or the entry with its task
            held = self._held.get(token)
            if held is not None and held.cancelled is None:
                held.task = self.loop.create_task(self._run(held), name=f"job-{held.job.id}")

    async def _run(self, held: _Held) -> None:
        try:
            async with self._slots:
                if held.job.start_delay > 0:  # its slot of its type's rate limit
                    await asyncio.sleep(held.job.start_delay)
                if self._closing:
                    raise asyncio.CancelledError  # drain began while this one waited
                held.started = True
                result = await self._attempt(held.job)
        except asyncio.CancelledError:
            with self._lock:
                if held.cancelled is None:  # cancelled by no one we know: a shutdown
                    held.cancelled = "interrupted"
            return
        with self._lock:
            if held.cancelled == "lost":
                return  # the lease went while it finished; the result would be refused
            held.finished = True
            self._unfinished -= 1
        self._report(result)

    async def _attempt(self, job: ClaimedJob) -> AttemptResult:
        loop = asyncio.get_running_loop()
        started_at, began = datetime.now(UTC), loop.time()
        wait = (started_at - job.queued_at).total_seconds()
        metrics.job_latency_seconds.labels(job.type, "queue_wait").observe(max(0.0, wait))
        in_progress = metrics.jobs_in_progress.labels(job.type)
        in_progress.inc()
        bind_context(job_id=job.id, job_type=job.type, attempt=job.attempt)
        if job.request_id:
            bind_context(request_id=job.request_id)
        parent = {"traceparent": job.traceparent} if job.traceparent else None
        attributes = {"job.id": job.id, "job.type": job.type, "job.attempt": job.attempt}
        try:
            with tracing.span(f"job {job.type}", parent_headers=parent, **attributes):
                outcome, value, error, permanent = await self._call(
                    job, began + job.timeout_seconds
                )
        finally:
            in_progress.dec()
            run_seconds = loop.time() - began
            metrics.job_latency_seconds.labels(job.type, "run").observe(run_seconds)
        if outcome == "succeeded":
            log.debug("job attempt succeeded", seconds=round(run_seconds, 3))
        else:
            log.warning("job attempt failed", outcome=outcome, error=error, max=job.max_attempts)
        finished_at = datetime.now(UTC)
        return AttemptResult(job, outcome, started_at, finished_at, value, error, permanent)

    async def _call(
        self, job: ClaimedJob, deadline: float
    ) -> tuple[AttemptOutcome, Any, str | None, bool]:
        """The handler's outcome, result, error, and whether the failure is for good;
        CancelledError if cancelled from outside."""
        handler = self.registry.get(job.type)
        if handler is None:  # the start-up check makes this a job of a newer catalogue
            # Not for good: a replica of a newer version may have it (a rolling deploy).
            return "failed", None, f"this worker has no handler for job type {job.type!r}", False
        try:
            payload = handler.model.model_validate(job.payload)
        except ValidationError as exc:
            return "failed", None, f"invalid payload: {exc}"[:MAX_ERROR_CHARS], True
        context = JobContext(
            job.id,
            job.type,
            job.attempt,
            job.max_attempts,
            log.bind(job_id=job.id, job_type=job.type, attempt=job.attempt),
            self.settings,
            self.resources,
            deadline,
        )
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                value = await handler.run(payload, context)
            if not scope.expired():  # a handler that swallowed its cancellation timed out too
                result = bounded_json(value, self.settings.jobs.max_result_bytes)
                return "succeeded", result, None, False
        except Exception as exc:
            if not scope.expired():
                return "failed", None, describe(exc), isinstance(exc, JobFailedForGood)
        return "timed_out", None, f"timed out after {job.timeout_seconds}s", False


def describe(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def bounded_json(value: Any, max_bytes: int) -> Any:
    """``value`` as plain JSON; over ``max_bytes`` encoded, a note with an excerpt."""
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:
        raise JobFailed(f"the handler returned something that is not JSON: {exc}") from None
    if len(encoded) <= max_bytes:
        return orjson.loads(encoded)
    excerpt = encoded[: max_bytes // 2].decode("utf-8", "replace")
    return {"truncated": True, "bytes": len(encoded), "excerpt": excerpt}
