"""``switchyard bench jobs``: no-op ``echo`` jobs end to end, state in PostgreSQL
included, next to the least code with the same guarantee, in one run on one set of
servers (embedded PostgreSQL, Redis and Kafka unless URLs are given).

(a) our stack: ``switchyard-api serve`` (POST /jobs) with its outbox relay, and
    ``switchyard-job-worker``: jobs paced on an idle system (enqueue→start), delayed
    jobs (start - run_at), N jobs from 64 clients with the worker running (enqueue rate,
    throughput, enqueue→start/finish), and the completion throughput of a backlog;
(b) the yardstick, :mod:`switchyard_devtools.bench.jobs_baseline`, measured the same way;
(c) ``JOBS__POOL_SIZE`` 1, 8, 64 x 1 and 2 worker processes.

Each configuration gets its own topics and consumer groups (a topic prefix of its own)
and fresh processes, and its workers run jobs before anything is timed, so no group
join (slow on tansu) is ever timed. A backlog is made while the workers run: ours as
jobs posted an hour ahead, then made due by one UPDATE of their ``run_at`` (the
scheduler leader queues them, 1,000 per 0.2 s tick); the yardstick's by inserting its
rows, then producing their messages. Completion throughput is jobs / (last
finished_at - first started_at), from the rows. ``BENCH_JOBS_COUNT`` (20,000) and
``BENCH_JOBS_SWEEP_COUNT`` (5,000) size the runs; ``BENCH_JOBS_FLAME=path.svg`` records
a py-spy flame graph of the worker during the backlog of (a).
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
ECHO = {"type": "echo", "payload": {"bench": True}}
Enqueue = Callable[[int], list[str]]


def _count(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _own_topics(settings: Settings) -> Settings:
    """The same servers under a new topic prefix: new topics, new consumer groups."""
    prefix = f"{settings.kafka.topic_prefix}{uuid.uuid4().hex[:4]}."
    fresh = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})}
    )
    ensure_topics(fresh)
    return fresh


def _jobs(url: str, count: int, **extra: object) -> Iterator[Request]:
    body = orjson.dumps({**ECHO, **extra})
    return (Request("POST", f"{url}/jobs", body) for _ in range(count))


def _paced(requests: Iterator[Request], per_second: float) -> Iterator[Request]:
    started = time.perf_counter()
    for index, request in enumerate(requests):
        time.sleep(max(0.0, started + index / per_second - time.perf_counter()))
        yield request


def _post(requests: Iterator[Request], clients: int) -> tuple[list[str], float]:
    """Job ids accepted, and the enqueue rate (jobs/s)."""
    result = run_load(
        requests, clients, keep_bodies=True, accepted=lambda s: s in (200, 202), show_progress=False
    )
    ids = accepted_ids(result)
    return ids, len(ids) / result.elapsed


def _some(url: str, count: int) -> list[str]:
    """``count`` jobs from a few clients (a warm-up)."""
    return _post(_jobs(url, count), 8)[0]


def _drain(engine: sa.Engine, ids: list[str], table: str = "jobs") -> JobsSummary:
    waited, left = wait_until_finished(engine, ids, WAIT, progress=False, table=table)
    if waited is None:
        raise RuntimeError(f"{left} of {len(ids)} jobs in {table} not finished in {WAIT:g}s")
    return summarise(fetch_timings(engine, ids, table))


_WORKERS_SEEN = {
    "jobs": "SELECT count(DISTINCT worker) FROM job_attempts WHERE job_id = ANY(:ids)",
    "baseline_jobs": "SELECT count(DISTINCT worker) FROM baseline_jobs WHERE id = ANY(:ids)",
}


def _warm_up(engine: sa.Engine, processes: int, enqueue: Enqueue, table: str) -> bool:
    """Jobs until each worker process ran one: every member of the group has partitions
    (tansu may take a minute to settle a group whose members join together)."""
    query = sa.text(_WORKERS_SEEN[table].replace(":ids", "CAST(:ids AS uuid[])"))
    seen: list[str] = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        ids = enqueue(30 * processes)
        _drain(engine, ids, table)
        seen += ids
        with engine.connect() as connection:
            if connection.execute(query, {"ids": seen}).scalar_one() >= processes:
                return True
        time.sleep(2)
    return False


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
    # --gil: only samples holding the GIL, i.e. where the worker's Python time goes.
    argv = [script("py-spy"), "record", "-o", str(path), "--pid", str(pid), "--gil"]
    spy = spawn(argv, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # attached before the first job
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=120)


def _idle(url: str, engine: sa.Engine) -> Idle:
    ids, _ = _post(_paced(_jobs(url, PACED_JOBS), PACED_PER_SECOND), 4)
    paced = _drain(engine, ids)
    delayed = _jobs(url, PACED_JOBS // 5, delay_seconds=DELAY_SECONDS)
    ids, _ = _post(_paced(delayed, PACED_PER_SECOND), 4)
    _drain(engine, ids)
    query = sa.text(
        "SELECT extract(epoch FROM started_at - run_at) FROM jobs "
        "WHERE id = ANY(CAST(:ids AS uuid[]))"
    )
    with engine.connect() as connection:
        late = sorted(float(v) for v in connection.execute(query, {"ids": ids}).scalars())
    return Idle(paced, (percentile(late, 50) * 1000, percentile(late, 99) * 1000, late[-1] * 1000))


def _backlog(url: str, engine: sa.Engine, count: int, flame: Path | None, pid: int) -> JobsSummary:
    """``count`` jobs posted an hour ahead, then all made due at once."""
    ids, _ = _post(_jobs(url, count, delay_seconds=3600), CLIENTS)
    with _flame(pid, flame):
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE jobs SET run_at = now() WHERE status = 'scheduled' "
                    "AND id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": ids},
            )
        return _drain(engine, ids)


def _ours(settings: Settings, workdir: Path, engine: sa.Engine) -> tuple[list[Run], Idle]:
    runs, idle = [], None
    flame = os.environ.get("BENCH_JOBS_FLAME")
    for processes in PROCESSES:
        for pool in POOLS:
            run = Run(processes, pool)
            default = (processes, pool) == DEFAULT
            if default:
                count = _count("BENCH_JOBS_COUNT", 20_000)
            else:  # a pool of one runs a job at a time: a fifth keeps its run short
                count = _count("BENCH_JOBS_SWEEP_COUNT", 5_000) // (5 if pool == 1 else 1)
            own = _own_topics(settings)
            with (
                api_server(own, workdir, relay=True, log_name=f"api-p{processes}-{pool}") as url,
                _job_workers(own, workdir, processes, pool) as pids,
            ):
                run.joined = _warm_up(engine, processes, functools.partial(_some, url), "jobs")
                if default:
                    idle = _idle(url, engine)
                flame_path = Path(flame) if flame and default else None
                run.drain = _backlog(url, engine, count, flame_path, pids[0])
                ids, run.enqueue_per_s = _post(_jobs(url, count), CLIENTS)
                run.e2e = _drain(engine, ids)
            runs.append(run)
    assert idle is not None
    return runs, idle


def _baseline_enqueue(
    settings: Settings, topic: str, count: int, per_second: float, batch: int
) -> list[str]:
    argv = [sys.executable, "-m", jobs_baseline.__name__, "enqueue", settings.database_url]
    argv += [settings.kafka_bootstrap_servers, topic, str(count), str(per_second), str(batch)]
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
        argv = [sys.executable, "-m", jobs_baseline.__name__, "work", settings.database_url]
        argv += [settings.kafka_bootstrap_servers, topic, f"{topic}-group"]
        env = settings_env(settings)
        workers = [spawn(argv, env=env, stdout=subprocess.DEVNULL) for _ in range(processes)]
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
    load_before = os.getloadavg()[0]
    kafka = {"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}.", "partitions": 6}
    with bench_settings(workdir, kafka={**kafka, "session_timeout_ms": 6000}) as settings:
        engine = sa.create_engine(settings.sqlalchemy_url, poolclass=sa.pool.NullPool)
        ours, idle = _ours(settings, workdir, engine)
        # The same servers, with an idle API and relay running beside it as for ours.
        own = _own_topics(settings)
        with api_server(own, workdir, relay=True, log_name="api-baseline"):
            baseline, baseline_paced = _baseline(own, engine)
        engine.dispose()
    counts = (_count("BENCH_JOBS_COUNT", 20_000), _count("BENCH_JOBS_SWEEP_COUNT", 5_000))
    paced = (PACED_JOBS, PACED_PER_SECOND, DELAY_SECONDS)
    loads = (load_before, os.getloadavg()[0])
    return report(ours, idle, baseline, baseline_paced, DEFAULT, counts, paced, loads)
