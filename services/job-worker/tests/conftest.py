"""Helpers for the job-worker's tests: claimed jobs and a pool with a fake sink (unit);
an isolated database and topics, worker processes, enqueue and wait (integration)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

from switchyard.config import Settings, load_settings
from switchyard.db.engine import create_engine
from switchyard.jobs import store
from switchyard.jobs.records import AttemptResult, ClaimedJob, Job, NewJob
from switchyard.kafka.topics import job_topics
from switchyard_devtools.testing.infra import isolated_settings
from switchyard_devtools.testing.worker import WorkerProcess, partitions_owned
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


# -- integration: an isolated database and topics, job-worker processes -----------------
@pytest.fixture
def isolated(settings: Settings) -> Settings:
    """A database and topic prefix of this test's own: another test's jobs, leader or
    workers never see (or reap, or promote) this test's."""
    return isolated_settings(settings, "jobworker")


@pytest.fixture
def own_engine(isolated: Settings) -> Iterator[sa.Engine]:
    engine = create_engine(isolated)
    yield engine
    engine.dispose()


class JobWorker(WorkerProcess):
    """A ``switchyard-job-worker`` process with quick retries and a short leader lease."""

    def __init__(self, settings: Settings, workdir: Path, name: str = "a", **env: str) -> None:
        workdir = workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        quick = {
            "JOBS__RETRY_BASE_SECONDS": "0.2",
            "JOBS__RETRY_CAP_SECONDS": "1",
            "JOBS__LEADER_LEASE_SECONDS": "2",
            "JOBS__TICK_SECONDS": "0.1",
        }
        super().__init__("switchyard-job-worker", "jobs", settings, workdir, {**quick, **env})

    def wait_until_assigned(self, partitions: int = 3, timeout: float = 60.0) -> JobWorker:
        super().wait_until_assigned(partitions, timeout)
        return self


def wait_until_shared(
    pair: Sequence[JobWorker], partitions: int = 3, timeout: float = 60.0
) -> None:
    """Until the workers own the ``jobs`` partitions between them, each some."""
    deadline = time.monotonic() + timeout
    while True:
        owned = [
            partitions_owned(w.log.read_text() if w.log.exists() else "", "jobs") for w in pair
        ]
        if sum(owned) == partitions and min(owned) > 0:
            return
        for worker in pair:
            assert worker.process is not None and worker.process.poll() is None, worker.logs()[
                -3000:
            ]
        assert time.monotonic() < deadline, f"partitions owned: {owned}"
        time.sleep(0.2)


@pytest.fixture
def workers(isolated: Settings, tmp_path: Path) -> Iterator[Callable[..., JobWorker]]:
    started: list[JobWorker] = []

    def make(name: str = "a", **env: str) -> JobWorker:
        worker = JobWorker(isolated, tmp_path, name, **env)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop_if_running()


def enqueue(
    engine: sa.Engine,
    settings: Settings,
    job_type: str,
    payload: dict[str, Any],
    max_attempts: int = 3,
    timeout_seconds: int = 60,
) -> str:
    job = NewJob(job_type, payload, max_attempts, timeout_seconds)
    stored, created = store.enqueue(engine, job, job_topics(settings))
    assert created
    return stored.id


def wait_for_jobs(
    engine: sa.Engine,
    ids: Sequence[str],
    statuses: Sequence[str] = ("succeeded", "dead"),
    timeout: float = 60.0,
) -> dict[str, Job]:
    """Until every job of ``ids`` is in one of ``statuses``; the jobs."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = {i: store.get_job(engine, i) for i in ids}
        if all(j is not None and j.status in statuses for j in jobs.values()):
            return {i: j for i, j in jobs.items() if j is not None}
        if time.monotonic() > deadline:
            raise AssertionError({i: j.status if j else None for i, j in jobs.items()})
        time.sleep(0.1)


def outcomes(engine: sa.Engine, job_id: str) -> list[str]:
    return [a.outcome for a in store.list_attempts(engine, job_id)]
