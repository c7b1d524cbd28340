"""The consumer runner against a real Kafka broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import Consumer, TopicPartition

from switchyard.config import Settings
from switchyard.errors import PermanentError, TransientError
from switchyard.events import CloudEvent, event_headers
from switchyard.kafka.consumer import (
    BatchHandler,
    ConsumedEvent,
    ConsumerRunner,
    FailurePolicy,
    ForwardToRetryTopic,
    Outcome,
    RetryTier,
    RunnerControls,
    RunnerOptions,
)
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.tail import wait_for_records
from switchyard.kafka.topics import dlq_name, ensure_topics
from switchyard.lifecycle import StopSignal

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(settings: Settings) -> str:
    name = f"{settings.kafka.topic_prefix}runner-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [name, dlq_name(name)])
    return name


def _publish(producer: EventProducer, topic: str, values: list[str]) -> list[CloudEvent]:
    events = [CloudEvent(type="test.value", source="/tests", data={"v": v}) for v in values]
    producer.publish(
        [OutgoingRecord(topic, e.to_json(), b"k", event_headers(e, "req-x")) for e in events]
    )
    return events


def _run_until(
    settings: Settings,
    topic: str,
    group: str,
    producer: EventProducer,
    handler: Callable[[list[ConsumedEvent]], None],
    done: threading.Event,
    options: RunnerOptions | None = None,
    timeout: float = 60.0,
    policy: FailurePolicy | None = None,
) -> None:
    stop = StopSignal()
    runner = ConsumerRunner(
        settings,
        group,
        [topic],
        handler,
        producer,
        stop,
        options or RunnerOptions(backoff_base_seconds=0.05, backoff_cap_seconds=0.2),
        policy=policy,
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    finished = done.wait(timeout)
    stop.set()
    thread.join(30)
    assert finished, "handler never saw what it waited for"
    assert not thread.is_alive()


def _committed(settings: Settings, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(0, tp.offset) for tp in offsets)
    finally:
        consumer.close()


def test_offsets_of_a_failing_handler_are_not_committed(
    settings: Settings, producer: EventProducer, topic: str
) -> None:
    _publish(producer, topic, ["a"])
    attempts: list[str] = []
    done = threading.Event()

    def down(events: list[ConsumedEvent]) -> None:
        attempts.append(events[0].event.data["v"])
        if len(attempts) >= 3:
            done.set()
        raise TransientError("database is down")

    group = f"g-{uuid.uuid4().hex[:6]}"
    _run_until(settings, topic, group, producer, down, done)
    assert len(attempts) >= 3  # retried, not dropped
    assert _committed(settings, group, topic) == 0

    # The next member of the group gets the same record again and commits it.
    seen: list[str] = []
    again = threading.Event()

    def up(events: list[ConsumedEvent]) -> None:
        seen.extend(e.event.data["v"] for e in events)
        again.set()

    _run_until(settings, topic, group, producer, up, again)
    assert seen == ["a"]
    assert _committed(settings, group, topic) == 1


def test_poison_records_go_to_the_dlq_and_the_consumer_goes_on(
    settings: Settings, producer: EventProducer, topic: str
) -> None:
    producer.publish([OutgoingRecord(topic, b"\xff not a cloud event", b"k")])
    _publish(producer, topic, ["ok-1", "poison", "ok-2", "refused"])
    handled: list[str] = []
    done = threading.Event()

    def handler(events: list[ConsumedEvent]) -> None:
        values = [e.event.data["v"] for e in events]
        if "poison" in values:
            raise ValueError("cannot parse this payload")
        if "refused" in values:
            raise PermanentError("business rule says never")
        handled.extend(values)
        if "ok-2" in handled:
            done.set()

    group = f"g-{uuid.uuid4().hex[:6]}"
    _run_until(
        settings,
        topic,
        group,
        producer,
        handler,
        done,
        RunnerOptions(
            max_batch=10,
            max_wait_seconds=0.3,
            max_attempts=2,
            backoff_base_seconds=0.05,
            backoff_cap_seconds=0.1,
        ),
    )
    assert "ok-1" in handled
    assert "ok-2" in handled
    dead = wait_for_records(settings, dlq_name(topic), lambda r: True, count=2, timeout=20)
    dead_values = {r.event.data["v"] for r in dead}
    assert dead_values == {"poison", "refused"}
    by_value = {r.event.data["v"]: r.headers for r in dead}
    assert by_value["poison"]["dlq-error-type"] == "ValueError"
    assert "cannot parse" in by_value["poison"]["dlq-error"]
    assert by_value["poison"]["dlq-original-topic"] == topic
    assert by_value["poison"]["x-request-id"] == "req-x"
    assert _committed(settings, group, topic) == 5  # everything, poison included

    # The undecodable record went to the DLQ too (as raw bytes).
    from confluent_kafka import Consumer as RawConsumer

    raw = RawConsumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"raw-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    partitions = raw.list_topics(dlq_name(topic), timeout=10).topics[dlq_name(topic)].partitions
    raw.assign([TopicPartition(dlq_name(topic), p, 0) for p in partitions])
    values = []
    for _ in range(40):
        message = raw.poll(0.25)
        if message is not None and not message.error():
            values.append(message.value())
    raw.close()
    assert b"\xff not a cloud event" in values


def test_undecoded_records_are_parsed_by_the_handler_and_bad_ones_dead_lettered_at_once(
    settings: Settings, producer: EventProducer, topic: str
) -> None:
    producer.publish([OutgoingRecord(topic, b"\xff not a cloud event", b"k")])
    _publish(producer, topic, ["ok-1", "ok-2"])
    handled: list[str] = []
    calls: list[int] = []
    done = threading.Event()

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(len(events))
        handled.extend(e.event.data["v"] for e in events)  # InvalidEvent for the bad one
        if "ok-2" in handled:
            done.set()

    group = f"g-{uuid.uuid4().hex[:6]}"
    _run_until(
        settings,
        topic,
        group,
        producer,
        handler,
        done,
        RunnerOptions(
            max_batch=10,
            max_wait_seconds=0.3,
            max_attempts=5,
            backoff_base_seconds=0.05,
            backoff_cap_seconds=0.1,
            decode=False,
        ),
    )
    assert {"ok-1", "ok-2"} <= set(handled)
    raw = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"raw-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    partitions = raw.list_topics(dlq_name(topic), timeout=10).topics[dlq_name(topic)].partitions
    raw.assign([TopicPartition(dlq_name(topic), p, 0) for p in partitions])
    dead: list[tuple[bytes | None, dict[str, bytes]]] = []
    for _ in range(80):
        message = raw.poll(0.25)
        if message is not None and not message.error():
            dead.append((message.value(), dict(message.headers() or [])))
    raw.close()
    assert [value for value, _ in dead] == [b"\xff not a cloud event"]
    assert dead[0][1]["dlq-error-type"] == b"InvalidEvent"
    assert calls.count(1) <= 3, "an undecodable record is dead-lettered without retries"
    assert _committed(settings, group, topic) == 3


def _setting(called: threading.Event, handler: BatchHandler) -> BatchHandler:
    def call(events: list[ConsumedEvent]) -> None:
        called.set()
        handler(events)

    return call


class OffThread(FailurePolicy):
    """Runs the handler in a thread while the member keeps polling, partitions paused."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1)

    def handle(
        self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
    ) -> Outcome:
        future = self.pool.submit(handler, events)
        runner.pause_until(future.done)
        future.result()
        return Outcome.COMMIT


def test_work_outlasting_max_poll_interval_is_committed_while_the_member_keeps_polling(
    settings: Settings, producer: EventProducer, topic: str
) -> None:
    _publish(producer, topic, ["slow"])
    done = threading.Event()
    interval_ms = settings.kafka.session_timeout_ms  # librdkafka's smallest allowed

    def slow(events: list[ConsumedEvent]) -> None:
        time.sleep(interval_ms / 1000 + 3)  # inline, the member would leave the group
        done.set()

    group = f"g-{uuid.uuid4().hex[:6]}"
    _run_until(
        settings,
        topic,
        group,
        producer,
        slow,
        done,
        RunnerOptions(extra_config={"max.poll.interval.ms": interval_ms}),
        policy=OffThread(),
    )
    assert _committed(settings, group, topic) == 1


def test_a_failing_record_goes_through_the_retry_tiers_then_to_the_dlq(
    settings: Settings, producer: EventProducer, topic: str
) -> None:
    tiers = [RetryTier("retry-1s", 1.0)]
    tier_topic = f"{topic}.retry-1s"
    ensure_topics(settings, [tier_topic])
    _publish(producer, topic, ["bad"])
    failed_at: list[tuple[str, float]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        failed_at.append((events[0].topic, time.time()))
        raise ValueError("cannot do this job")

    group = f"g-{uuid.uuid4().hex[:6]}"
    policy = ForwardToRetryTopic(producer, tiers, backoff_base_seconds=0.05)
    first = threading.Event()
    _run_until(settings, topic, group, producer, _setting(first, handler), first, policy=policy)
    forwarded = wait_for_records(settings, tier_topic, lambda r: True, timeout=20)
    assert forwarded[0].event.data["v"] == "bad"
    assert forwarded[0].headers["retry-original-topic"] == topic
    assert forwarded[0].headers["dlq-error-type"] == "ValueError"
    assert _committed(settings, group, topic) == 1

    second = threading.Event()
    _run_until(
        settings,
        tier_topic,
        f"{group}-retry-1s",
        producer,
        _setting(second, handler),
        second,
        policy=policy,
    )
    dead = wait_for_records(settings, dlq_name(topic), lambda r: True, timeout=20)
    assert dead[0].event.data["v"] == "bad"
    assert dead[0].headers["dlq-original-topic"] == tier_topic
    assert [t for t, _ in failed_at] == [topic, tier_topic]
    assert failed_at[1][1] >= float(forwarded[0].headers["retry-not-before"]) - 0.01
