"""The batcher's main loop: consumer workers per topic, one shared set of sinks.

Each topic (logs, health) has ``workers`` consumer threads in one consumer group. Every
worker owns some partitions, gathers a batch by size or time (the shared
:class:`ConsumerRunner`), hands it to the :class:`BatchWriter` and commits its offsets
only after every sink stored it. A batch never crosses workers, so commits never run
ahead of writes, and order within a partition (one service's logs) is kept.
While one worker waits for PostgreSQL (the GIL is released), another decodes its next
batch: that is the pipelining, without an in-memory queue that a crash would empty.
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor

from switchyard.config import Settings, TopicBatchSettings
from switchyard.kafka.consumer import ConsumerRunner, RunnerOptions
from switchyard.kafka.producer import EventProducer
from switchyard.kafka.topics import HEALTH, LOGS, Topic, topic_name
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger
from switchyard.service import WorkerContext
from switchyard.sinks import Sink, build_sinks
from switchyard_batcher.writer import BatchWriter, GuardedSink, guard

log = get_logger(__name__)


def fetch_config(batching: TopicBatchSettings) -> dict[str, int]:
    """librdkafka settings of the batcher's consumers (also given to the bench's yardstick)."""
    return {
        # tansu answers each fetch slowly: with librdkafka's defaults (1 MiB per partition
        # and fetch, a short queue) a worker waited for records half of the time and the
        # batcher could not drain faster than ~28,000 records/s even doing nothing with
        # them. Large fetches and a deep prefetch queue (measured: ~160,000 records/s) keep
        # a batch ready when the worker comes back; the queue stays bounded in bytes.
        "queued.min.messages": max(1_000, 50 * batching.max_size),
        "queued.max.messages.kbytes": 65_536,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        # Apache Kafka answers a fetch as soon as there is data, tansu (the dev broker) only
        # after this wait: produce -> consume took p50 24 ms, max 173 ms at 100 ms, and
        # p50 7 ms, max 86 ms at 10 ms (README, Benchmarks: Batcher). What it costs: when
        # idle, one fetch per wait per consumer thread.
        "fetch.wait.max.ms": 20,
    }


def build_runners(
    settings: Settings,
    sinks: list[GuardedSink],
    producer: EventProducer,
    stop: StopSignal,
    pool: ThreadPoolExecutor,
) -> list[ConsumerRunner]:
    batcher = settings.batcher
    runners: list[ConsumerRunner] = []
    topics: tuple[tuple[Topic, TopicBatchSettings], ...] = (
        (LOGS, batcher.logs),
        (HEALTH, batcher.health),
    )
    for topic, batching in topics:
        name = topic_name(settings, topic)
        writer = BatchWriter(name, sinks, batching, pool, stop)
        options = RunnerOptions(
            max_batch=batching.max_size,
            max_wait_seconds=batching.max_wait_seconds,
            backoff_base_seconds=batcher.retry_base_seconds,
            backoff_cap_seconds=batcher.retry_cap_seconds,
            decode=False,  # to_records parses each value once, straight to rows
            extra_config=fetch_config(batching),
        )
        group = f"{settings.kafka.topic_prefix}batcher-{topic.name}"
        runners.extend(
            ConsumerRunner(settings, group, [name], writer, producer, stop, options)
            for _ in range(batching.workers)
        )
    return runners


def run(context: WorkerContext) -> None:
    settings, stop = context.settings, context.stop
    # A batch keeps thousands of young objects alive; with the default thresholds the
    # collector walks them over and over (a third of the decoding time). Collect rarely.
    gc.freeze()
    gc.set_threshold(100_000, 50, 50)
    sinks: list[Sink] = build_sinks(settings)
    workers = settings.batcher.logs.workers + settings.batcher.health.workers
    pool = ThreadPoolExecutor(max_workers=workers * len(sinks), thread_name_prefix="sink")
    crashed: list[BaseException] = []

    def work(runner: ConsumerRunner) -> None:
        try:
            runner.run()
        except BaseException as exc:
            crashed.append(exc)
            log.exception("consumer worker crashed; stopping the batcher", group=runner.group_id)
            stop.set()  # the others flush and commit; the orchestrator restarts us

    try:
        runners = build_runners(
            settings, guard(sinks, settings.batcher), context.producer, stop, pool
        )
        threads = [
            threading.Thread(target=work, args=(runner,), name=f"consumer-{i}")
            for i, runner in enumerate(runners)
        ]
        for thread in threads:
            thread.start()
        log.info("batcher running", workers=len(threads), sinks=[s.name for s in sinks])
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)  # short waits keep the main thread free for SIGTERM
    finally:
        pool.shutdown(wait=True)
        for sink in sinks:
            sink.close()
    if crashed:
        raise RuntimeError("a consumer worker crashed") from crashed[0]
