"""Helpers for the job-worker's tests: claimed jobs, a pool run against a fake sink."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from switchyard.config import Settings, load_settings
from switchyard.jobs.records import AttemptResult, ClaimedJob
from switchyard_job_worker.pool import JobPool
from switchyard_job_worker.registry import Registry, Resources

_tokens = itertools.count(1)


def claimed(
    job_type: str = "echo",
    payload: Any = None,
    *,
    attempt: int = 1,
    max_attempts: int = 3,
    timeout_seconds: int = 30,
) -> ClaimedJob:
    token = next(_tokens)
    return ClaimedJob(
        id=f"00000000-0000-4000-8000-{token:012d}",
        type=job_type,
        payload={} if payload is None else payload,
        attempt=attempt,
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
        lease_token=token,
        queued_at=datetime.now(UTC),
        request_id=None,
        traceparent=None,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Reports:
    """The pool's sink: every AttemptResult, in order."""

    def __init__(self) -> None:
        self.results: list[AttemptResult] = []
        self._lock = threading.Lock()

    def __call__(self, result: AttemptResult) -> None:
        with self._lock:
            self.results.append(result)

    def by_job(self) -> dict[str, AttemptResult]:
        with self._lock:
            return {r.job.id: r for r in self.results}


def unit_settings(**jobs: Any) -> Settings:
    return load_settings(jobs=jobs)


@pytest.fixture
def make_pool() -> Iterator[Callable[..., tuple[JobPool, Reports]]]:
    pools: list[JobPool] = []

    def make(registry: Registry, **jobs: Any) -> tuple[JobPool, Reports]:
        reports = Reports()
        resources = Resources(cast(Any, None), cast(Any, None))
        pool = JobPool(registry, resources, unit_settings(**jobs), reports).start()
        pools.append(pool)
        return pool, reports

    yield make
    for pool in pools:
        pool.stop()
