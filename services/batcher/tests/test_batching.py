"""Batching by size and by time, flush on shutdown, a sink failing then recovering.

The Kafka consumer and the sink are fakes; the consumer runner, the batch writer and the
circuit breaker are the real ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from switchyard.config import BatcherSettings, Settings, TopicBatchSettings
from switchyard.kafka.consumer import ConsumerRunner, RunnerOptions
from switchyard.kafka.records import ConsumedEvent
from switchyard.lifecycle import StopSignal
from switchyard_batcher.writer import LATENCY_SAMPLE, BatchWriter, guard

from .fakes import TOPIC, FakeConsumer, RecordingSink, check_event


@dataclass
class Running:
    consumer: FakeConsumer
    sink: RecordingSink
    stop: StopSignal
    thread: threading.Thread
    started: float

    def wait_for_records(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(len(b) for _, b in self.sink.batches) < count:
            assert time.monotonic() < deadline, f"only {self.sink.batches!r}"
            time.sleep(0.01)

    def sizes(self) -> list[int]:
        return [len(batch) for _, batch in self.sink.batches]


@pytest.fixture
def start() -> Iterator[object]:
    pool = ThreadPoolExecutor(2)
    running: list[Running] = []

    def starter(
        max_size: int, max_wait: float, sink: RecordingSink | None = None, breaker_failures: int = 3
    ) -> Running:
        sink = sink or RecordingSink()
        stop = StopSignal()
        batching = TopicBatchSettings(max_size=max_size, max_wait_seconds=max_wait)
        settings = BatcherSettings(breaker_failures=breaker_failures, breaker_reset_seconds=0.1)
        writer = BatchWriter(TOPIC, guard([sink], settings), batching, pool, stop)
        consumer = FakeConsumer({})
        runner = ConsumerRunner(
            Settings(),
            "g",
            [TOPIC],
            writer,
            None,
            stop,  # type: ignore[arg-type]
            RunnerOptions(
                max_batch=max_size,
                max_wait_seconds=max_wait,
                backoff_base_seconds=0.02,
                backoff_cap_seconds=0.1,
            ),
            consumer=consumer,
        )  # type: ignore[arg-type]
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        state = Running(consumer, sink, stop, thread, time.monotonic())
        running.append(state)
        return state

    yield starter
    for state in running:
        state.stop.set()
        state.thread.join(5)
    pool.shutdown()


def test_a_full_batch_is_flushed_at_once(start) -> None:  # type: ignore[no-untyped-def]
    running = start(max_size=10, max_wait=30.0)
    running.consumer.add(25)
    running.wait_for_records(20)
    assert running.sizes() == [10, 10]
    assert time.monotonic() - running.started < 5, "size flush must not wait for the timer"
    assert running.consumer.commits[-1] == [(0, 20)]


def test_a_partial_batch_is_flushed_after_max_wait(start) -> None:  # type: ignore[no-untyped-def]
    running = start(max_size=1000, max_wait=0.3)
    added = time.monotonic()
    running.consumer.add(3)
    running.wait_for_records(3)
    waited = running.sink.batches[0][0] - added
    assert running.sizes() == [3]
    assert 0.25 <= waited < 2.0
    assert running.consumer.commits == [[(0, 3)]]


def test_stopping_flushes_and_commits_the_batch_in_flight(start) -> None:  # type: ignore[no-untyped-def]
    running = start(max_size=1000, max_wait=60.0)
    running.consumer.add(7)
    time.sleep(0.3)
    assert running.sink.batches == []
    running.stop.set()
    running.thread.join(5)
    assert not running.thread.is_alive()
    assert running.sizes() == [7]
    assert running.consumer.commits == [[(0, 7)]]
    assert running.consumer.closed


def test_a_failing_sink_is_retried_until_it_recovers(start) -> None:  # type: ignore[no-untyped-def]
    sink = RecordingSink(failures=4)
    running = start(max_size=5, max_wait=0.05, sink=sink, breaker_failures=2)
    running.consumer.add(5)
    running.wait_for_records(5)
    assert running.sizes() == [5], "written once, as one batch"
    # The breaker opened after 2 failures, so fewer calls reached the sink than retries.
    assert sink.attempts == 5
    assert running.consumer.pauses >= 4, "partitions stay paused while the sink is down"
    assert running.consumer.commits == [[(0, 5)]], "committed only after the write"


def test_a_batch_of_probe_results_is_written_and_observed_without_received_at() -> None:
    # The end-to-end latency sample reads received_at, which only API events carry; a
    # batch of target.checked once failed after its write and was split record by record.
    sink = RecordingSink()
    with ThreadPoolExecutor(1) as pool:
        writer = BatchWriter(
            "health", guard([sink], BatcherSettings()), TopicBatchSettings(), pool, StopSignal()
        )
        events = [
            ConsumedEvent("health", 0, offset, None, check_event(target_id=offset + 1), None, 0)
            for offset in range(2 * LATENCY_SAMPLE + 3)
        ]
        writer(events)
    assert [record.kind for _, batch in sink.batches for record in batch] == ["check"] * len(events)
