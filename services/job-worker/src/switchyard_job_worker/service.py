"""The job-worker's main loop: consumers, pool, finisher, heartbeat, leader, relay.

Pieces, each in its own module: handlers bound by type (:mod:`.registry`,
:mod:`.handlers`), ``job.enqueued`` to claimed jobs (:mod:`.dispatch`), running them
(:mod:`.pool`), storing results (:mod:`.finisher`), keeping leases (:mod:`.heartbeat`),
the retry tiers (:mod:`.retries`), the scheduler leader (:mod:`.leader`). An outbox relay
publishes the events of this process's own state changes (retries, dead jobs,
promotions, fired schedules) without waiting for another process's relay.

Guarantee on SIGTERM, in this order: the consumers stop and leave their groups (a batch
not yet claimed stays uncommitted for the next member); jobs running get
``JOBS__SHUTDOWN_GRACE_SECONDS`` (counted from the signal) to finish, the rest are
cancelled and released back to ``queued`` (the attempt not counted); the finisher writes
every result; the leader resigns; the relay publishes what is left; exit 0. SIGKILL
loses nothing either: the leases expire and the leader's reaper sends those jobs to
retry.
"""

from __future__ import annotations

import contextvars
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from switchyard.backoff import backoff_delay
from switchyard.config import JobSettings, Settings
from switchyard.errors import is_transient
from switchyard.fetch.fetcher import Fetcher
from switchyard.jobs import lifecycle, store
from switchyard.jobs.leader import LeaderLease
from switchyard.jobs.records import ClaimedJob, JobTopics, TypeLimit
from switchyard.jobs.types import CATALOGUE
from switchyard.kafka.consumer import ConsumerRunner, RunnerOptions
from switchyard.kafka.topics import job_topics
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger
from switchyard.outbox import OutboxRelay
from switchyard.service import WorkerContext
from switchyard_job_worker.dispatch import Dispatcher, DispatchPolicy
from switchyard_job_worker.finisher import Finisher
from switchyard_job_worker.gauges import DeadLetterDepth
from switchyard_job_worker.heartbeat import Heartbeat
from switchyard_job_worker.leader import LEADER_NAME, Duty, SchedulerLeader
from switchyard_job_worker.pool import JobPool
from switchyard_job_worker.registry import REGISTRY, Resources
from switchyard_job_worker.retries import Requeuer, RetryTierPolicy

log = get_logger(__name__)

FETCH_WAIT_MAX_MS = 10  # enqueue -> start latency: the broker answers a fetch this soon
FLUSH_SECONDS = 10.0  # at shutdown, for writing results and releasing jobs


def run(context: WorkerContext) -> None:
    import switchyard_job_worker.handlers  # noqa: F401  (binds the built-in types)

    REGISTRY.require_complete()
    settings, stop, config = context.settings, context.stop, context.settings.jobs
    limits = type_limits(config)
    topics = job_topics(settings)
    engine = context.engine
    worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    fetcher = Fetcher(settings.fetch)

    finisher = Finisher(
        lambda results: lifecycle.finish(
            engine, results, topics, config.retry_base_seconds, config.retry_cap_seconds, limits
        ),
        lambda tokens: pool.settled(tokens),
        config.max_batch,
        config.batch_wait_seconds,
    )
    pool = JobPool(REGISTRY, Resources(engine, fetcher), settings, finisher.submit)
    heartbeat = Heartbeat(
        lambda tokens: lifecycle.heartbeat(engine, tokens, config.lease_seconds),
        pool,
        config.lease_seconds,
    )
    lease = LeaderLease(engine, LEADER_NAME, worker, config.leader_lease_seconds)
    leader = SchedulerLeader(lease, duties(config, topics, limits), stop)
    relay_stop = StopSignal()
    relay = OutboxRelay(engine, context.producer, settings.outbox)
    gauge = DeadLetterDepth(lambda: store.dead_count(engine), stop)
    runners = consumers(settings, context, topics, pool, worker, limits)

    crashed: list[BaseException] = []
    pool.start()
    finisher.start()
    heartbeat.start()
    helpers = [
        _thread("scheduler-leader", leader.run, crashed, stop),
        _thread("outbox-relay", lambda: relay.run(relay_stop), crashed, stop),
        _thread("job-gauges", gauge.run, crashed, stop),
    ]
    consuming = [_thread(f"consumer-{r.group_id}", r.run, crashed, stop) for r in runners]
    log.info(
        "job-worker running", worker=worker, pool_size=config.pool_size, types=REGISTRY.names()
    )
    try:
        while not stop.is_set():
            stop.wait(0.5)  # short waits keep the main thread free for SIGTERM
    finally:
        stopped_at = time.monotonic()
        for thread in consuming:
            thread.join(60)
        grace = config.shutdown_grace_seconds - (time.monotonic() - stopped_at)
        interrupted = pool.drain(grace)
        finisher.close(FLUSH_SECONDS)
        release(engine, interrupted, topics, pool)
        heartbeat.stop()
        pool.run(fetcher.close(), timeout=10)
        pool.stop()
        relay_stop.set()
        for thread in helpers:
            thread.join(30)
    if crashed:
        raise RuntimeError("a job-worker thread crashed") from crashed[0]


def type_limits(config: JobSettings) -> dict[str, TypeLimit]:
    """``JOBS__LIMITS`` as the SQL takes them; a type not in the catalogue is refused."""
    unknown = sorted(set(config.limits) - set(CATALOGUE))
    if unknown:
        raise ValueError(f"JOBS__LIMITS names unknown job type(s): {', '.join(unknown)}")
    return {
        name: TypeLimit(limit.concurrency, limit.rate_per_second)
        for name, limit in config.limits.items()
    }


def duties(config: JobSettings, topics: JobTopics, limits: dict[str, TypeLimit]) -> list[Duty]:
    base, cap = config.retry_base_seconds, config.retry_cap_seconds
    attempts, timeout = config.default_max_attempts, config.default_timeout_seconds
    return [
        Duty("promote_due", config.tick_seconds, lambda c: lifecycle.promote_due(c, topics), True),
        Duty(
            "fire_schedules",
            config.tick_seconds,
            lambda c: lifecycle.fire_schedules(c, topics, attempts, timeout),
        ),
        Duty(
            "reap_expired",
            1.0,
            lambda c: lifecycle.reap_expired(c, topics, base, cap, limits=limits),
        ),
        Duty("wake_parked", 1.0, lambda c: lifecycle.wake_parked(c, topics, limits), True),
        Duty(
            "reannounce_stale",
            60.0,
            lambda c: lifecycle.reannounce_stale(c, topics, config.reannounce_after_seconds),
        ),
        Duty(
            "prune_finished",
            60.0,
            lambda c: lifecycle.prune_finished(c, config.keep_finished_seconds),
        ),
    ]


def consumers(
    settings: Settings,
    context: WorkerContext,
    topics: JobTopics,
    pool: JobPool,
    worker: str,
    limits: dict[str, TypeLimit],
) -> list[ConsumerRunner]:
    """The ``jobs`` consumer, and one consumer per retry tier."""
    config, prefix, engine = settings.jobs, settings.kafka.topic_prefix, context.engine

    def claim(ids: Sequence[str]) -> list[ClaimedJob]:
        return lifecycle.claim(engine, ids, worker, config.lease_seconds, limits)

    runners = [
        ConsumerRunner(
            settings,
            f"{prefix}job-worker",
            [topics.jobs],
            Dispatcher(claim, pool.submit),
            context.producer,
            context.stop,
            RunnerOptions(
                max_batch=min(config.max_batch, config.pool_size),
                max_wait_seconds=config.batch_wait_seconds,
                extra_config={"fetch.wait.max.ms": FETCH_WAIT_MAX_MS},
            ),
            policy=DispatchPolicy(pool.has_room),
        )
    ]
    requeuer = Requeuer(lambda due: lifecycle.requeue(engine, due, topics))
    for topic, delay in topics.retry_tiers:
        tier = topic.rsplit(".", 1)[-1]  # "retry-5s"
        runners.append(
            ConsumerRunner(
                settings,
                f"{prefix}job-worker-{tier}",
                [topic],
                requeuer,
                context.producer,
                context.stop,
                RunnerOptions(max_batch=100, max_wait_seconds=0.2),
                policy=RetryTierPolicy(delay),
            )
        )
    return runners


def release(engine: sa.Engine, jobs: list[ClaimedJob], topics: JobTopics, pool: JobPool) -> None:
    """Interrupted jobs back to ``queued``; retried while PostgreSQL is down, for a
    while: if it stays down, their leases expire and the reaper retries them."""
    if not jobs:
        return
    give_up_at = time.monotonic() + FLUSH_SECONDS
    attempt = 0
    while True:
        try:
            released = lifecycle.release(engine, jobs, topics)
            log.info("interrupted jobs released to the queue", jobs=len(jobs), released=released)
            break
        except Exception as exc:
            attempt += 1
            delay = backoff_delay(attempt, 0.2, 2.0)
            if not is_transient(exc) or time.monotonic() + delay > give_up_at:
                log.error(
                    "releasing interrupted jobs failed; their leases will expire",
                    jobs=len(jobs),
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
                break
            time.sleep(delay)
    pool.settled([job.lease_token for job in jobs])


def _thread(
    name: str, target: Callable[[], None], crashed: list[BaseException], stop: StopSignal
) -> threading.Thread:
    """``target`` in a thread that logs with this one's context; a crash stops the
    process (orderly: the same shutdown as SIGTERM)."""

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:
            crashed.append(exc)
            log.exception("thread crashed; stopping the job-worker", thread=name)
            stop.set()

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(guarded,), name=name, daemon=True
    )
    thread.start()
    return thread
