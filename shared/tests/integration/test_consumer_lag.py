"""Consumer plumbing against a real broker: kafka_consumer_lag per partition with two
members in one process and a rebalance, values that match what the group has not
committed; and the topics' min.insync.replicas."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from switchyard import metrics
from switchyard.config import Settings
from switchyard.events import CloudEvent, event_headers
from switchyard.kafka.consumer import ConsumedEvent, ConsumerRunner, RunnerOptions
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.topics import dlq_name, ensure_topics
from switchyard.lifecycle import StopSignal

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(settings: Settings) -> str:
    name = f"{settings.kafka.topic_prefix}lag-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [name, dlq_name(name)])
    return name


def _publish(producer: EventProducer, topic: str, keys: list[str]) -> None:
    records = []
    for key in keys:
        event = CloudEvent(type="test.value", source="/tests", data={"k": key})
        records.append(
            OutgoingRecord(topic, event.to_json(), key.encode(), event_headers(event, "req-lag"))
        )
    producer.publish(records)


def _series(group: str, topic: str) -> dict[int, float]:
    """Exported lag per partition of ``topic`` for ``group`` in this process."""
    found = {}
    for family in metrics.REGISTRY.collect():
        if family.name != "kafka_consumer_lag":
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels["group"] == group and labels["topic"] == topic:
                found[int(labels["partition"])] = sample.value
    return found


def _eventually(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


class _Member:
    def __init__(
        self,
        settings: Settings,
        group: str,
        topic: str,
        producer: EventProducer,
        handler: Callable[[list[ConsumedEvent]], None],
    ) -> None:
        self.stop = StopSignal()
        self.runner = ConsumerRunner(
            settings, group, [topic], handler, producer, self.stop, RunnerOptions(max_batch=1)
        )
        self.thread = threading.Thread(target=self.runner.run, daemon=True)
        self.thread.start()

    def owned(self) -> set[int]:
        return {p for _, p in self.runner.member._assigned}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_two_members_in_one_process_and_a_rebalance(
    settings: Settings, producer: EventProducer, topic: str
) -> None:
    group = f"lag-{uuid.uuid4().hex[:6]}"
    handled: list[str] = []
    lock = threading.Lock()

    def handle(events: list[ConsumedEvent]) -> None:
        with lock:
            handled.extend(e.event.data["k"] for e in events)

    keys = [f"key-{i}" for i in range(60)]  # spread over every partition
    _publish(producer, topic, keys)
    first = _Member(settings, group, topic, producer, handle)
    second = _Member(settings, group, topic, producer, handle)
    partitions = set(range(settings.kafka.partitions))
    try:
        _eventually(
            lambda: (
                first.owned() and second.owned() and first.owned() | second.owned() == partitions
            ),
            "the two members never shared the partitions",
        )
        assert not first.owned() & second.owned()
        _eventually(lambda: len(handled) >= len(keys), "records not all handled")
        # Every partition reported once, by its owner, at 0 once all is committed.
        _eventually(
            lambda: _series(group, topic) == dict.fromkeys(partitions, 0.0),
            f"lag per partition never settled at 0: {_series(group, topic)}",
        )

        second.close()  # leaves the group: its partitions move to the first member
        _eventually(lambda: first.owned() == partitions, "no rebalance to the first member")
        _publish(producer, topic, [f"more-{i}" for i in range(30)])
        _eventually(lambda: len(handled) >= len(keys) + 30, "records after the rebalance")
        _eventually(
            lambda: _series(group, topic) == dict.fromkeys(partitions, 0.0),
            f"after the rebalance: {_series(group, topic)}",
        )
    finally:
        first.close()
        second.close()
    assert _series(group, topic) == {}, "stopped members leave no lag series behind"


def test_the_lag_is_what_the_group_has_not_committed(
    settings: Settings, producer: EventProducer, topic: str
) -> None:
    """One partition (one key), one record per batch, the handler stuck on the third: the
    two before are committed, so the exported lag is the records left, 4 of 6."""
    group = f"lag-{uuid.uuid4().hex[:6]}"
    release = threading.Event()
    calls = 0

    def handle(events: list[ConsumedEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            release.wait(60)

    _publish(producer, topic, ["same"] * 6)
    member = _Member(settings, group, topic, producer, handle)
    try:
        _eventually(lambda: calls >= 3, "the handler never reached the third record")
        (partition,) = [p for p, lag in _series(group, topic).items() if lag > 0] or [None]
        assert partition is not None, _series(group, topic)
        assert _series(group, topic)[partition] == 4
        assert all(v == 0 for p, v in _series(group, topic).items() if p != partition)
        release.set()
        _eventually(lambda: _series(group, topic).get(partition) == 0, "lag never reached 0")
    finally:
        release.set()
        member.close()


def test_topics_are_created_with_min_insync_replicas(settings: Settings, topic: str) -> None:
    """ensure_topics sets it on new topics (tansu reports only the configs that were set)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    from switchyard.kafka.client_config import common_config

    admin = AdminClient(common_config(settings, "test"))
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    configs = future.result(timeout=10)
    expected = str(settings.kafka.topic_min_insync_replicas)
    assert configs["min.insync.replicas"].value == expected
