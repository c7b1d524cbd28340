"""Reading a topic without joining a group: for the CLI's ``topics tail`` and for tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from switchyard.config import Settings
from switchyard.kafka.client_config import common_config
from switchyard.kafka.consumer import ConsumedEvent, decode


def iter_records(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = True,
    follow: bool = False,
    idle_timeout: float = 2.0,
    parse: bool = True,
) -> Iterator[ConsumedEvent]:
    """Every record of ``topic``, in partition order; stops after ``idle_timeout`` of
    silence unless ``follow``. With ``parse``, records that are not CloudEvents are
    skipped; without, every record comes (its ``event`` parsed only if read)."""
    consumer = Consumer(
        {
            **common_config(settings, "tail"),
            "group.id": "switchyard-tail",  # required by librdkafka; never committed
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        if not partitions:
            return
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        last_seen = time.monotonic()
        while follow or time.monotonic() - last_seen < idle_timeout:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(error.str())
                continue
            last_seen = time.monotonic()
            try:
                yield decode(message, parse)
            except ValueError:
                continue
    finally:
        consumer.close()


def wait_for_records(
    settings: Settings,
    topic: str,
    predicate: Callable[[ConsumedEvent], bool],
    count: int = 1,
    timeout: float = 30.0,
) -> list[ConsumedEvent]:
    """Read ``topic`` from the start until ``count`` records match or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    matched: list[ConsumedEvent] = []
    while time.monotonic() < deadline and len(matched) < count:
        matched = [r for r in iter_records(settings, topic, idle_timeout=1.0) if predicate(r)]
        if len(matched) < count:
            time.sleep(0.3)
    return matched
