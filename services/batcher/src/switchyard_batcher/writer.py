"""Writing one batch to every sink; the consumer commits its offsets only if this returns.

Sinks are written concurrently (a file write overlaps the PostgreSQL round trip). Each
sink sits behind a :class:`CircuitBreaker`. Any failure raises, so the consumer runner
retries the same batch with exponential backoff and jitter while its partitions stay
paused: nothing more is fetched while a sink is down, and memory holds one batch.
A sink that already stored the batch skips it on the retry (sinks are idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from switchyard import metrics
from switchyard.config import BatcherSettings, TopicBatchSettings
from switchyard.errors import TransientError, is_transient
from switchyard.kafka.consumer import ConsumedEvent
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger
from switchyard.sinks import Record, Sink
from switchyard_batcher.breaker import CircuitBreaker
from switchyard_batcher.records import to_records

log = get_logger(__name__)

LATENCY_SAMPLE = 10


class GuardedSink:
    """A sink with its breaker and its metrics."""

    def __init__(self, sink: Sink, breaker: CircuitBreaker) -> None:
        self.sink = sink
        self.breaker = breaker

    def write(self, records: Sequence[Record]) -> None:
        name = self.sink.name
        self.breaker.before_call()
        if self.breaker.failures:
            metrics.worker_retries_total.labels(name).inc()
        started = time.perf_counter()
        try:
            self.sink.write_batch(records)
        except Exception as exc:
            metrics.worker_failures_total.labels(name).inc()
            if is_transient(exc):
                self.breaker.failed()
            else:
                self.breaker.succeeded()
            raise
        self.breaker.succeeded()
        metrics.write_latency_seconds.labels(name).observe(time.perf_counter() - started)


def guard(sinks: Sequence[Sink], settings: BatcherSettings) -> list[GuardedSink]:
    return [
        GuardedSink(
            sink,
            CircuitBreaker(sink.name, settings.breaker_failures, settings.breaker_reset_seconds),
        )
        for sink in sinks
    ]


class BatchWriter:
    """The batch handler of one topic's consumers."""

    def __init__(
        self,
        topic: str,
        sinks: Sequence[GuardedSink],
        batching: TopicBatchSettings,
        pool: ThreadPoolExecutor,
        stop: StopSignal,
    ) -> None:
        self.topic = topic
        self.sinks = list(sinks)
        self.batching = batching
        self._pool = pool
        self._stop = stop
        self._seen = 0  # records written; racy across workers, which only shifts a sample

    def __call__(self, events: list[ConsumedEvent]) -> None:
        records = to_records(events)
        futures: list[Future[None]] = [self._pool.submit(s.write, records) for s in self.sinks[1:]]
        errors: list[Exception] = []
        try:
            self.sinks[0].write(records)
        except Exception as exc:
            errors.append(exc)
        for future in futures:
            error = future.exception()
            if isinstance(error, Exception):
                errors.append(error)
        if errors:
            self._raise(errors)
        self._observe(records)

    def _raise(self, errors: list[Exception]) -> None:
        # A dependency failure wins: the whole batch is retried, not split record by record.
        transient = [e for e in errors if is_transient(e)]
        if len(errors) == 1:
            raise errors[0]
        if transient:
            raise TransientError(
                "; ".join(f"{type(e).__name__}: {e}" for e in transient)
            ) from transient[0]
        raise errors[0]

    def _observe(self, records: Sequence[Record]) -> None:
        if self._stop.is_set():
            reason = "shutdown"
        elif len(records) >= self.batching.max_size:
            reason = "size"
        else:
            reason = "time"
        metrics.batch_size.labels(self.topic).observe(len(records))
        metrics.batches_flushed_total.labels(self.topic, reason).inc()
        now = time.time()
        latency = metrics.end_to_end_latency_seconds.labels(self.topic)
        # A systematic sample, one record in LATENCY_SAMPLE across batches (so small and
        # large batches weigh as their records do): an observation per record cost as much
        # as writing the record's COPY row. Percentiles stay those of all records.
        start = -self._seen % LATENCY_SAMPLE
        self._seen += len(records)
        # The events of one request share received_at: parse each value once. Probe
        # results (target_checks) were received by no API: they have none.
        received: dict[str, float] = {}
        for record in records[start::LATENCY_SAMPLE]:
            text = record.fields.get("received_at")
            if text is None:
                continue
            if text not in received:
                received[text] = datetime.fromisoformat(text).timestamp()
            latency.observe(max(0.0, now - received[text]))
