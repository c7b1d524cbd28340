"""A consumer group's lag read from outside the group: committed offsets vs high watermarks.

Guarantee: a reading takes at most its timeout (plus closing a probe) and never raises;
when Kafka does not answer in time the reading is None ("unknown"), and a topic with a
partition whose watermark did not come in time has lag None: never a made-up number.
Readings are cached for ``max_age`` seconds and concurrent callers share one query, so an
admin page polling many times a second costs Kafka one round of requests.

High watermarks are read as a consumer sees them, from Fetch responses (a probe that
never joins a group nor commits, a kilobyte per partition): tansu, the dev broker,
answers ListOffsets wrongly. A partition the group never committed counts from the low
watermark, since the job groups start at the earliest offset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from switchyard.config import Settings
from switchyard.kafka.client_config import common_config
from switchyard.logging import get_logger

log = get_logger(__name__)

GroupTopics = tuple[str, tuple[str, ...]]  # (group id, topics it consumes)
PROBE_GROUP = "switchyard-lag-probe"


@dataclass(frozen=True)
class TopicLag:
    group: str
    topic: str
    lag: int | None  # records the group has not committed, over every partition; None: unknown
    partitions: int  # 0: the topic does not exist (yet)


class LagReader:
    """Reads lag for fixed ``(group, topics)`` pairs; one per process, thread-safe."""

    def __init__(
        self,
        settings: Settings,
        groups: Sequence[GroupTopics],
        *,
        timeout: float = 2.0,
        max_age: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._groups = tuple(groups)
        self._timeout = timeout
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._admin: AdminClient | None = None
        self._cached: tuple[float, list[TopicLag] | None] | None = None

    def read(self) -> list[TopicLag] | None:
        """Lag per (group, topic), in the order given; None when Kafka did not answer."""
        with self._lock:
            if self._cached is not None and self._clock() - self._cached[0] < self._max_age:
                return self._cached[1]
            try:
                reading: list[TopicLag] | None = self._query(self._clock() + self._timeout)
            except Exception as exc:  # a reading is optional: never fail the caller
                log.warning("consumer lag unavailable", error=str(exc)[:300])
                reading = None
            self._cached = (self._clock(), reading)
            return reading

    def _client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(dict(common_config(self._settings, "lag")))
        return self._admin

    def _left(self, deadline: float) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise TimeoutError("Kafka did not answer within the lag timeout")
        return left

    def _query(self, deadline: float) -> list[TopicLag]:
        admin = self._client()
        wanted = {topic for _, topics in self._groups for topic in topics}
        metadata = admin.list_topics(timeout=self._left(deadline)).topics
        partitions = {
            topic: [(topic, p) for p in sorted(metadata[topic].partitions)]
            for topic in wanted
            if topic in metadata
        }
        committed = {
            group: self._committed(
                admin, group, [key for t in topics for key in partitions.get(t, [])], deadline
            )
            for group, topics in self._groups
        }
        every = sorted({key for keys in partitions.values() for key in keys})
        # Start each probe where the most advanced group is: the least data to fetch.
        starts = {
            key: max((c[key] for c in committed.values() if c.get(key, -1) >= 0), default=-1)
            for key in every
        }
        marks = self._watermarks(starts, deadline)
        readings = []
        for group, topics in self._groups:
            for topic in topics:
                keys = partitions.get(topic, [])
                lag: int | None = 0
                for key in keys:
                    if key not in marks or lag is None:
                        lag = None
                        continue
                    low, high = marks[key]
                    start = committed[group].get(key, -1)
                    lag += max(0, high - (start if start >= 0 else low))
                readings.append(TopicLag(group, topic, lag, len(keys)))
        return readings

    def _committed(
        self, admin: AdminClient, group: str, keys: list[tuple[str, int]], deadline: float
    ) -> dict[tuple[str, int], int]:
        if not keys:
            return {}
        # librdkafka answers one group per request.
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(*key) for key in keys])
        futures = admin.list_consumer_group_offsets([request], request_timeout=self._left(deadline))
        answer = futures[group].result(timeout=self._left(deadline))
        return {(tp.topic, tp.partition): int(tp.offset) for tp in answer.topic_partitions}

    def _watermarks(
        self, starts: dict[tuple[str, int], int], deadline: float
    ) -> dict[tuple[str, int], tuple[int, int]]:
        config = common_config(self._settings, "lag-probe")
        return fetched_watermarks(config, starts, deadline, self._clock)


def fetched_watermarks(
    config: dict[str, Any],
    starts: dict[tuple[str, int], int],
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) of each partition that answered one fetch before ``deadline``.

    Read from a fetch response (one small fetch from ``starts``, negative: the
    beginning), not from ListOffsets, which tansu (the dev broker) answers wrongly.
    ``config`` gives the connection (``bootstrap.servers`` and security)."""
    if not starts:
        return {}
    probe = Consumer(
        {
            **config,
            "group.id": PROBE_GROUP,  # required by librdkafka; never joined or committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "max.partition.fetch.bytes": 1024,
            "queued.max.messages.kbytes": 1024,
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        probe.assign(
            [
                TopicPartition(topic, partition, start if start >= 0 else OFFSET_BEGINNING)
                for (topic, partition), start in starts.items()
            ]
        )
        pending = set(starts)
        while pending and clock() < deadline:
            message = probe.poll(min(0.1, max(0.0, deadline - clock())))
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                continue
            key = (str(message.topic()), int(message.partition() or 0))
            if key in pending:
                pending.discard(key)
                probe.pause([TopicPartition(*key)])
        marks = {}
        for key in set(starts) - pending:
            # None until a fetch for the partition came back (the stubs omit it).
            cached: tuple[int, int] | None = probe.get_watermark_offsets(
                TopicPartition(*key), cached=True
            )
            if cached is not None and cached[1] >= 0:
                marks[key] = (max(cached[0], 0), cached[1])
        return marks
    finally:
        probe.close()
