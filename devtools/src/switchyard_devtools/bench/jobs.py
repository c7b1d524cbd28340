"""``switchyard bench jobs``: no-op ``echo`` jobs end to end, state in PostgreSQL
included, next to the least code with the same guarantee, in one run on one set of
servers (embedded PostgreSQL, Redis and Kafka unless URLs are given).

(a) our stack: ``switchyard-api serve`` (POST /jobs), its outbox relay and
    ``switchyard-job-worker``: jobs paced on an idle system (enqueue→start), delayed
    jobs (start - run_at), N jobs from 64 clients with the worker running (enqueue rate,
    throughput, enqueue→start/finish), and the completion throughput of a backlog;
(b) the yardstick, :mod:`switchyard_devtools.bench.jobs_baseline`, measured the same way;
(c) ``JOBS__POOL_SIZE`` 1, 8, 64 x 1 and 2 worker processes.

A backlog is made with the workers already in their group (so a group join, slow on
tansu, is never timed): ours with the outbox relay stopped (rows and outbox rows pile up
in PostgreSQL, then the relay starts), the yardstick's by inserting its rows before
producing their messages. Completion throughput is jobs / (last finished_at - first
started_at), from the rows. ``BENCH_JOBS_COUNT`` (20,000), ``BENCH_JOBS_SWEEP_COUNT``
(5,000) size the runs; ``BENCH_JOBS_FLAME=path.svg`` records a py-spy flame graph of the
worker during the (a) backlog.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.kafka.topics import ensure_topics
from switchyard_devtools.bench import jobs_baseline
from switchyard_devtools.bench.jobs_report import Idle, Run, report
from switchyard_devtools.bench.stack import api_server, bench_settings, script, service
from switchyard_devtools.load.generator import Request, percentile, run_load
from switchyard_devtools.load.jobs import (
    JobsSummary,
    accepted_ids,
    fetch_timings,
    job_requests,
    summarise,
    wait_until_finished,
)
from switchyard_devtools.stack.processes import free_port, spawn, stop_process
from switchyard_devtools.testing.infra import settings_env

NAME = "jobs"
POOLS = (1, 8, 64)
PROCESSES = (1, 2)
DEFAULT = (1, 64)  # (processes, pool) of (a): the shipped JOBS__POOL_SIZE, one replica
CLIENTS = 64
PACED_PER_SECOND = 50
PACED_JOBS = 500
DELAY_SECONDS = 2
WAIT = 600.0
Enqueue = Callable[[int], list[str]]


def _count(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _paced(requests: Iterator[Request], per_second: float) -> Iterator[Request]:
    started = time.perf_counter()
    for index, request in enumerate(requests):
        time.sleep(max(0.0, started + index / per_second - time.perf_counter()))
        yield request


def _post(url: str, requests: Iterator[Request], clients: int) -> tuple[list[str], float]:
    """Job ids accepted, and the enqueue rate (jobs/s)."""
    result = run_load(
        requests, clients, keep_bodies=True, accepted=lambda s: s in (200, 202), show_progress=False
    )
    ids = accepted_ids(result)
    return ids, len(ids) / result.elapsed


def _echo(url: str, count: int) -> Iterator[Request]:
    return job_requests(url, count, "echo", {"bench": True})


def _wait(engine: sa.Engine, ids: list[str], table: str = "jobs") -> None:
    waited, left = wait_until_finished(engine, ids, WAIT, progress=False, table=table)
    if waited is None:
        raise RuntimeError(f"{left} of {len(ids)} jobs in {table} not finished in {WAIT:g}s")


_WORKERS_SEEN = {
    "jobs": "SELECT count(DISTINCT worker) FROM job_attempts WHERE job_id = ANY(:ids)",
    "baseline_jobs": "SELECT count(DISTINCT worker) FROM baseline_jobs WHERE id = ANY(:ids)",
}


def _warm_up(engine: sa.Engine, processes: int, enqueue: Enqueue, table: str) -> bool:
    """Jobs until each worker process ran one: every member of the group has partitions
    (tansu may take a minute to settle a group whose members join together)."""
    query = sa.text(_WORKERS_SEEN[table].replace(":ids", "CAST(:ids AS uuid[])"))
    seen: set[str] = set()
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        ids = enqueue(30 * processes)
        _wait(engine, ids, table)
        seen.update(ids)
        with engine.connect() as connection:
            if connection.execute(query, {"ids": sorted(seen)}).scalar_one() >= processes:
                return True
        time.sleep(2)
    return False


def _drain(engine: sa.Engine, ids: list[str], table: str = "jobs") -> JobsSummary:
    _wait(engine, ids, table)
    return summarise(fetch_timings(engine, ids, table))


class Relay:
    """The outbox relay, stopped to let a backlog pile up in PostgreSQL."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self._settings, self._workdir = settings, workdir
        self._stack: contextlib.ExitStack | None = None

    def start(self) -> None:
        env = {"ADMIN_PORT": str(free_port()), "SERVICE_NAME": "outbox-relay"}
        argv = [script("switchyard-api"), "relay"]
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(
            service(argv, self._settings, env, log=self._workdir / "relay.log")
        )

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


@contextlib.contextmanager
def _job_workers(
    settings: Settings, workdir: Path, processes: int, pool: int
) -> Iterator[list[int]]:
    with contextlib.ExitStack() as stack:
        pids = []
        for n in range(processes):
            port = free_port()
            env = {"ADMIN_PORT": str(port), "JOBS__POOL_SIZE": str(pool)}
            argv = [script("switchyard-job-worker")]
            ready = f"http://127.0.0.1:{port}/readyz"
            log = workdir / f"job-worker-p{processes}-pool{pool}-{n}.log"
            pids.append(stack.enter_context(service(argv, settings, env, ready, log)))
        yield pids


@contextlib.contextmanager
def _flame(pid: int, path: Path | None) -> Iterator[None]:
    """py-spy records ``pid`` during the block; the SVG is written on SIGINT."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [script("py-spy"), "record", "-o", str(path), "--pid", str(pid), "--rate", "250"]
    spy = spawn(argv, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # attached before the first job
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=120)


def _idle(url: str, engine: sa.Engine) -> Idle:
    ids, _ = _post(url, _paced(_echo(url, PACED_JOBS), PACED_PER_SECOND), 4)
    paced = _drain(engine, ids)
    body = orjson.dumps({"type": "echo", "payload": {}, "delay_seconds": DELAY_SECONDS})
    delayed = (Request("POST", f"{url}/jobs", body) for _ in range(PACED_JOBS // 5))
    ids, _ = _post(url, _paced(delayed, PACED_PER_SECOND), 4)
    _wait(engine, ids)
    query = (
        "SELECT extract(epoch FROM started_at - run_at) FROM jobs "
        "WHERE id = ANY(CAST(:ids AS uuid[]))"
    )
    with engine.connect() as connection:
        late = sorted(float(v) for v in connection.execute(sa.text(query), {"ids": ids}).scalars())
    return Idle(paced, (percentile(late, 50) * 1000, percentile(late, 99) * 1000, late[-1] * 1000))


def _ours(
    settings: Settings, workdir: Path, engine: sa.Engine, url: str, relay: Relay
) -> tuple[list[Run], Idle]:
    runs, idle = [], None
    flame = os.environ.get("BENCH_JOBS_FLAME")
    for processes in PROCESSES:
        for pool in POOLS:
            run = Run(processes, pool)
            default = (processes, pool) == DEFAULT
            count = (
                _count("BENCH_JOBS_COUNT", 20_000)
                if default
                else _count("BENCH_JOBS_SWEEP_COUNT", 5_000)
            )
            with _job_workers(settings, workdir, processes, pool) as pids:
                run.joined = _warm_up(
                    engine, processes, lambda n: _post(url, _echo(url, n), 8)[0], "jobs"
                )
                if default:
                    idle = _idle(url, engine)
                relay.stop()
                ids, _ = _post(url, _echo(url, count), CLIENTS)
                relay.start()
                with _flame(pids[0], Path(flame) if flame and default else None):
                    run.drain = _drain(engine, ids)
                ids, run.enqueue_per_s = _post(url, _echo(url, count), CLIENTS)
                run.e2e = _drain(engine, ids)
            runs.append(run)
    assert idle is not None
    return runs, idle


def _baseline_enqueue(
    settings: Settings, topic: str, count: int, per_second: float, batch: int
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        jobs_baseline.__name__,
        "enqueue",
        settings.database_url,
        settings.kafka_bootstrap_servers,
        topic,
        str(count),
        str(per_second),
        str(batch),
    ]
    done = subprocess.run(
        argv, capture_output=True, check=True, timeout=WAIT, env=settings_env(settings)
    )
    return done.stdout.decode().split()


def _baseline_backlog(settings: Settings, topic: str, count: int) -> list[str]:
    """``count`` rows in one transaction, then their messages."""
    return _baseline_enqueue(settings, topic, count, 0, count)


def _baseline(settings: Settings, engine: sa.Engine) -> tuple[list[Run], JobsSummary]:
    jobs_baseline.setup(settings.database_url)
    count = _count("BENCH_JOBS_COUNT", 20_000)
    runs, paced = [], None
    for processes in PROCESSES:
        topic = f"{settings.kafka.topic_prefix}baseline-jobs-{processes}"
        ensure_topics(settings, [topic])
        argv = [
            sys.executable,
            "-m",
            jobs_baseline.__name__,
            "work",
            settings.database_url,
            settings.kafka_bootstrap_servers,
            topic,
            f"{topic}-group",
        ]
        workers = [
            spawn(argv, env=settings_env(settings), stdout=subprocess.DEVNULL)
            for _ in range(processes)
        ]
        try:
            run = Run(processes)
            enqueue = functools.partial(_baseline_backlog, settings, topic)
            run.joined = _warm_up(engine, processes, enqueue, "baseline_jobs")
            if processes == 1:
                ids = _baseline_enqueue(settings, topic, PACED_JOBS, PACED_PER_SECOND, 1)
                paced = _drain(engine, ids, "baseline_jobs")
            run.drain = _drain(engine, enqueue(count), "baseline_jobs")
            runs.append(run)
        finally:
            for worker in workers:
                stop_process(worker)
    assert paced is not None
    return runs, paced


def run(workdir: Path) -> str:
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    kafka = {"topic_prefix": prefix, "partitions": 6, "session_timeout_ms": 6000}
    with bench_settings(workdir, kafka=kafka) as settings:
        engine = sa.create_engine(settings.sqlalchemy_url, poolclass=sa.pool.NullPool)
        relay = Relay(settings, workdir)
        with api_server(settings, workdir, log_name="api") as url:
            relay.start()
            try:
                ours, idle = _ours(settings, workdir, engine, url, relay)
                # Same servers, same idle API and relay running beside it.
                baseline, baseline_paced = _baseline(settings, engine)
            finally:
                relay.stop()
        engine.dispose()
    counts = (_count("BENCH_JOBS_COUNT", 20_000), _count("BENCH_JOBS_SWEEP_COUNT", 5_000))
    paced = (PACED_JOBS, PACED_PER_SECOND, DELAY_SECONDS)
    return report(ours, idle, baseline, baseline_paced, DEFAULT, counts, paced)
