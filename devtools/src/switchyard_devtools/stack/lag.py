"""Consumer lag on the dev broker: records published but not yet committed, per group.

Guarantee: a partition whose high watermark could not be read is reported as unknown,
never as caught up, so a caller waiting for zero lag keeps waiting (until its own
deadline) rather than stopping the broker early.

tansu, the embedded broker, answers ListOffsets ("latest") wrongly for some partitions,
while the high watermark in its Fetch responses is right. So the watermark is read the
way a consumer sees it: a probe consumer (never joining a group, never committing) is
assigned each partition at the highest offset any group committed there and polls until
every partition answered once (a record or end-of-partition).

Run as ``python -m switchyard_devtools.stack.lag BOOTSTRAP [GROUP=TOPIC ...]`` (the
groups the running services consume with, counted even before they commit anything).
The supervisor runs it as a child process, so it never starts librdkafka threads in its
own (forking) process. It prints one JSON line:
``{"groups": {group: {topic: lag}}, "unknown": [...]}``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from switchyard.kafka.lag import PROBE_GROUP, fetched_watermarks


@dataclass
class Lag:
    """Records not yet committed, per group and topic; partitions that could not be read."""

    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(topics.values()) for topics in self.groups.values())

    def caught_up(self) -> bool:
        return self.total == 0 and not self.unknown

    def describe(self) -> str:
        parts = [
            f"{group}/{topic} {lag}"
            for group, topics in sorted(self.groups.items())
            for topic, lag in sorted(topics.items())
            if lag
        ]
        if self.unknown:
            parts.append(f"unreadable: {', '.join(self.unknown)}")
        return "; ".join(parts) or "none"

    def to_json(self) -> bytes:
        return orjson.dumps({"groups": self.groups, "unknown": self.unknown})

    @classmethod
    def from_json(cls, data: bytes) -> Lag:
        parsed = orjson.loads(data)
        return cls(
            {g: {t: int(n) for t, n in topics.items()} for g, topics in parsed["groups"].items()},
            list(parsed["unknown"]),
        )


def measure(bootstrap: str, expected: Sequence[tuple[str, str]] = (), timeout: float = 5.0) -> Lag:
    """The lag of every consumer group that committed offsets on the broker, and of each
    ``(group, topic)`` in ``expected`` even before that group committed anything there
    (then everything in the topic counts)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=timeout).result()
    metadata = admin.list_topics(timeout=timeout)
    topics_of: dict[str, set[str]] = {}
    for group in sorted(g.group_id for g in listed.valid if g.group_id != PROBE_GROUP):
        # Which topics the group consumes: those it committed on (tansu reports no
        # member assignments).
        known = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=timeout
        )[group].result()
        topics_of.setdefault(group, set()).update(tp.topic for tp in known.topic_partitions)
    for group, topic in expected:
        topics_of.setdefault(group, set()).add(topic)
    # committed[group][(topic, partition)]: the next offset it will read; None: none yet.
    committed: dict[str, dict[tuple[str, int], int | None]] = {}
    # A topic the metadata does not show cannot be judged: unknown, never caught up.
    missing = sorted({t for topics in topics_of.values() for t in topics} - set(metadata.topics))
    for group, topics in sorted(topics_of.items()):
        wanted = [
            TopicPartition(topic, partition)
            for topic in sorted(topics)
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        ]
        if not wanted:
            continue
        try:
            answer = (
                admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group, wanted)], request_timeout=timeout
                )[group]
                .result()
                .topic_partitions
            )
        except KafkaException:
            answer = []  # a group the broker does not know yet has committed nothing
        offsets: dict[tuple[str, int], int | None] = {
            (tp.topic, tp.partition): None for tp in wanted
        }
        offsets.update(
            {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in answer}
        )
        committed[group] = offsets
    partitions = sorted({key for offsets in committed.values() for key in offsets})
    highs = _high_watermarks(bootstrap, partitions, committed, timeout)
    lag = Lag()
    for group, offsets in committed.items():
        per_topic = lag.groups.setdefault(group, {})
        for (topic, partition), offset in offsets.items():
            high = highs.get((topic, partition))
            if high is None:
                lag.unknown.append(f"{topic}[{partition}]")
                continue
            # Uncommitted: the group starts from the beginning (auto.offset.reset=earliest;
            # the memory broker deletes nothing, so the beginning is offset 0).
            per_topic[topic] = per_topic.get(topic, 0) + max(0, high - (offset or 0))
    lag.unknown = sorted({*lag.unknown, *(f"{topic} (not in the metadata)" for topic in missing)})
    return lag


def _high_watermarks(
    bootstrap: str,
    partitions: list[tuple[str, int]],
    committed: dict[str, dict[tuple[str, int], int | None]],
    timeout: float,
) -> dict[tuple[str, int], int]:
    starts: dict[tuple[str, int], int] = {}
    for key in partitions:
        # Start where the most advanced group is: the least data to fetch.
        done = [offsets[key] for offsets in committed.values() if offsets.get(key) is not None]
        starts[key] = max((s for s in done if s is not None), default=-1)
    config = {"bootstrap.servers": bootstrap, "log_level": 3}
    marks = fetched_watermarks(config, starts, time.monotonic() + timeout)
    return {key: high for key, (_, high) in marks.items()}


def main(argv: list[str] | None = None) -> int:
    """``BOOTSTRAP [GROUP=TOPIC ...]``: print the lag as one JSON line."""
    args = sys.argv[1:] if argv is None else argv
    if not args or not all("=" in arg for arg in args[1:]):
        print(
            "usage: python -m switchyard_devtools.stack.lag BOOTSTRAP [GROUP=TOPIC ...]",
            file=sys.stderr,
        )
        return 2
    expected = [(group, topic) for group, _, topic in (arg.partition("=") for arg in args[1:])]
    sys.stdout.buffer.write(measure(args[0], expected).to_json() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
