"""The consumer runner with a fake Kafka client: commits, retries, dead letters, policies.

No broker: the runner gets a small in-memory consumer (``consumer=``) that serves the
records it was given, records commits and pauses, and sets the stop signal once drained,
so :meth:`ConsumerRunner.run` returns by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from switchyard import metrics
from switchyard.errors import PermanentError, TransientError
from switchyard.events import CloudEvent, event_headers
from switchyard.kafka.consumer import (
    BatchHandler,
    ConsumedEvent,
    ConsumerRunner,
    DeadLetters,
    FailurePolicy,
    GroupMembership,
    Middleware,
    Outcome,
    RetryInPlaceThenDeadLetter,
    RunnerControls,
    RunnerOptions,
)
from switchyard.kafka.producer import OutgoingRecord
from switchyard.kafka.retry_topics import ForwardToRetryTopic, RetryTier
from switchyard.lifecycle import StopSignal
from switchyard_devtools.testing.fakes import FakeMessage

TOPIC = "orders"
FAST = {"backoff_base_seconds": 0.001, "backoff_cap_seconds": 0.002}


class FakeConsumer:
    """Serves its records in order (per unpaused partition) and stops the runner when
    drained; rebalance callbacks run inside consume/poll, as librdkafka runs them."""

    def __init__(self, stop: StopSignal, partitions: Sequence[int] = (0,)) -> None:
        self.stop = stop
        self.pending: list[FakeMessage] = []
        self.partitions = list(partitions)
        self.commits: list[list[tuple[int, int]]] = []
        self.paused: set[int] = set()
        self.pauses = self.polls = 0
        self.closed = False
        self.watermark: int | None = None
        self.on_poll: Callable[[FakeConsumer], FakeMessage | None] | None = None
        self._callbacks: dict[str, Any] = {}
        self._offsets = dict.fromkeys(partitions, 0)

    def add(
        self,
        values: Sequence[str | bytes],
        partition: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = [(k, v.encode()) for k, v in (headers or {}).items()]
        for value in values:
            if isinstance(value, str):
                event = CloudEvent(type="t.v", source="/t", data={"v": value})
                body, headers_ = event.to_json(), event_headers(event, f"req-{value}") + extra
            else:
                body, headers_ = value, extra
            offset = self._offsets[partition]
            self.pending.append(FakeMessage(TOPIC, partition, offset, body, header_list=headers_))
            self._offsets[partition] = offset + 1

    def assign(self, partition: int) -> None:
        self.partitions.append(partition)
        self._offsets.setdefault(partition, 0)
        self._callbacks["on_assign"](self, [TopicPartition(TOPIC, partition)])

    def revoke(self, partition: int) -> None:
        self.partitions.remove(partition)
        self.pending = [m for m in self.pending if m.partition() != partition]
        self._callbacks["on_revoke"](self, [TopicPartition(TOPIC, partition)])

    # -- the confluent_kafka.Consumer surface the runner uses --------------------------
    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._callbacks = callbacks
        callbacks["on_assign"](self, [TopicPartition(TOPIC, p) for p in self.partitions])

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        ready = [m for m in self.pending if m.partition() not in self.paused][:num_messages]
        if not ready and not self.pending and timeout != 0:  # a wait that finds nothing:
            self.stop.set()  # the scenario is over
        self.pending = [m for m in self.pending if m not in ready]
        return ready

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        self.polls += 1
        time.sleep(min(timeout, 0.001))
        return self.on_poll(self) if self.on_poll else None

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int] | None:
        return None if self.watermark is None else (0, self.watermark)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in self.partitions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        # The next offset to fetch: past what was handed out; -1001 before any fetch.
        served = {p: o for p, o in self._offsets.items() if o > 0}
        for message in self.pending:
            served[message.partition()] = min(
                served.get(message.partition(), message.offset()), message.offset()
            )
        return [
            TopicPartition(tp.topic, tp.partition, served.get(tp.partition, -1001))
            for tp in partitions
        ]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.pauses += 1
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def close(self) -> None:
        self.closed = True


class FakeDlq:
    def __init__(self) -> None:
        self.published: list[OutgoingRecord] = []

    def publish(self, records: Sequence[OutgoingRecord], timeout: float | None = None) -> None:
        self.published.extend(records)

    def headers(self, index: int = 0) -> dict[str, str]:
        return {k: v.decode() for k, v in self.published[index].headers}


class Setup:
    def __init__(self, partitions: Sequence[int] = (0,)) -> None:
        self.stop = StopSignal()
        self.consumer = FakeConsumer(self.stop, partitions)
        self.dlq = FakeDlq()

    def runner(
        self,
        handler: BatchHandler,
        policy: FailurePolicy | None = None,
        middleware: list[Middleware] | None = None,
        **options: Any,
    ) -> ConsumerRunner:
        # max_wait 0: a batch is what one consume() returns, so the fake's stop on an
        # empty consume() comes only once the runner is back for more.
        return ConsumerRunner(
            None,
            "g",
            [TOPIC],
            handler,
            self.dlq,
            self.stop,  # type: ignore[arg-type]
            RunnerOptions(**{"max_batch": 10, "max_wait_seconds": 0.0, **FAST, **options}),
            policy=policy,
            middleware=middleware,
            consumer=self.consumer,
        )  # type: ignore[arg-type]

    def run(
        self, handler: BatchHandler, policy: FailurePolicy | None = None, **options: Any
    ) -> None:
        thread = threading.Thread(target=self.runner(handler, policy, **options).run)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "the runner did not stop"
        assert self.consumer.closed


class FixedDelay(RetryInPlaceThenDeadLetter):
    """The default policy with a fixed retry delay, so a pause surely polls."""

    def delay(self, attempt: int) -> float:
        return 0.02


def once(action: Callable[[FakeConsumer], FakeMessage | None]) -> Callable[..., Any]:
    def on_poll(consumer: FakeConsumer) -> FakeMessage | None:
        consumer.on_poll = None
        return action(consumer)

    return on_poll


def values(events: list[ConsumedEvent]) -> list[str]:
    return [e.event.data["v"] for e in events]


@pytest.fixture
def kafka() -> Setup:
    return Setup()


def test_offsets_are_committed_only_after_the_handler_returned(kafka: Setup) -> None:
    kafka.consumer.add(["a", "b", "c"])
    commits_seen_by_handler: list[int] = []

    def handler(events: list[ConsumedEvent]) -> None:
        commits_seen_by_handler.append(len(kafka.consumer.commits))

    kafka.run(handler)
    assert commits_seen_by_handler == [0]
    assert kafka.consumer.commits == [[(0, 3)]]
    assert kafka.dlq.published == []


def test_a_dependency_outage_retries_the_same_batch_paused_and_uncommitted(kafka: Setup) -> None:
    kafka.consumer.add(["a", "b"])
    calls: list[tuple[list[str], int]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append((values(events), len(kafka.consumer.commits)))
        assert kafka.consumer.paused == set(), "resumed before each attempt"
        if len(calls) <= 3:
            raise TransientError("database is down")

    kafka.run(handler, max_attempts=1)  # transient failures do not count as attempts
    assert calls == [(["a", "b"], 0)] * 4, "the whole batch, again, nothing committed"
    assert kafka.consumer.pauses == 3
    assert kafka.consumer.commits == [[(0, 2)]]
    assert kafka.dlq.published == []


def test_a_poison_record_is_isolated_and_dead_lettered_with_error_headers(kafka: Setup) -> None:
    kafka.consumer.add(["ok-1", "poison", "ok-2", "refused"])
    calls: list[list[str]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(values(events))
        if "poison" in calls[-1]:
            raise ValueError("cannot parse this payload")
        if "refused" in calls[-1]:
            raise PermanentError("business rule says never")

    kafka.run(handler, max_attempts=2)
    assert calls == [
        ["ok-1", "poison", "ok-2", "refused"],
        ["ok-1"],
        ["poison"],
        ["poison"],
        ["ok-2"],
        ["refused"],
    ]
    assert [r.topic for r in kafka.dlq.published] == ["orders.dlq", "orders.dlq"]
    poison, refused = kafka.dlq.headers(0), kafka.dlq.headers(1)
    assert poison["dlq-error-type"] == "ValueError"
    assert poison["dlq-error"] == "cannot parse this payload"
    assert poison["dlq-original-topic"] == TOPIC
    assert poison["dlq-original-partition"] == "0"
    assert poison["dlq-original-offset"] == "1"
    assert poison["dlq-consumer-group"] == "g"
    assert poison["x-request-id"] == "req-poison"  # the original headers are kept
    assert "dlq-failed-at" in poison
    assert refused["dlq-error-type"] == "PermanentError"
    assert kafka.dlq.published[0].key == b"k"
    assert kafka.consumer.commits == [[(0, 4)]], "everything, poison included"


def test_an_undecodable_record_is_dead_lettered_without_reaching_the_handler(
    kafka: Setup,
) -> None:
    kafka.consumer.add([b"\xff not a cloud event", "ok"])
    calls: list[list[str]] = []
    kafka.run(lambda events: calls.append(values(events)))
    assert calls == [["ok"]]
    assert kafka.dlq.published[0].value == b"\xff not a cloud event"
    assert kafka.dlq.headers()["dlq-error-type"] == "InvalidEvent"
    assert kafka.consumer.commits == [[(0, 2)]]


def test_stopping_during_an_outage_leaves_the_batch_uncommitted(kafka: Setup) -> None:
    kafka.consumer.add(["a"])
    kafka.consumer.add(["b"])
    calls: list[list[str]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(values(events))
        if len(calls) == 2:
            kafka.stop.set()  # SIGTERM while the dependency is still down
        raise TransientError("database is down")

    kafka.run(handler)
    assert calls == [["a", "b"], ["a", "b"]]
    assert kafka.consumer.commits == []


def test_stopping_while_isolating_records_leaves_the_batch_uncommitted(kafka: Setup) -> None:
    kafka.consumer.add(["poison", "b"])
    calls: list[list[str]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(values(events))
        if len(events) > 1:
            raise ValueError("bad batch")
        kafka.stop.set()
        raise TransientError("and now the database is down too")

    kafka.run(handler, max_attempts=5)
    assert calls == [["poison", "b"], ["poison"]]
    assert kafka.consumer.commits == []
    assert kafka.dlq.published == [], "a transient failure is never dead-lettered"


def test_records_of_revoked_partitions_are_skipped_and_not_committed() -> None:
    kafka = Setup(partitions=(0, 1))
    kafka.consumer.add(["a0"], partition=0)
    kafka.consumer.add(["a1"], partition=1)
    calls: list[list[str]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(values(events))
        if len(calls) == 1:
            kafka.consumer.on_poll = once(lambda consumer: consumer.revoke(1))  # rebalance
            raise TransientError("database is down")

    kafka.run(handler, FixedDelay())
    assert calls == [["a0", "a1"], ["a0"]]
    assert kafka.consumer.commits == [[(0, 1)]]


def test_a_record_fetched_while_paused_is_held_for_the_next_batch_not_skipped(
    kafka: Setup,
) -> None:
    kafka.consumer.add(["a"])
    calls: list[list[str]] = []

    def assigned_while_paused(consumer: FakeConsumer) -> FakeMessage:
        consumer.assign(1)  # a rebalance gave us partition 1, not paused ...
        consumer.add(["stray"], partition=1)
        return consumer.pending.pop()  # ... and poll() fetched from it

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(values(events))
        if len(calls) == 1:
            kafka.consumer.on_poll = once(assigned_while_paused)
            raise TransientError("database is down")

    kafka.run(handler, FixedDelay())
    assert calls == [["a"], ["a"], ["stray"]]
    assert kafka.consumer.paused == set()
    assert kafka.consumer.commits == [[(0, 1)], [(1, 1)]]


def test_a_custom_policy_decides_and_sees_only_the_runner_controls(kafka: Setup) -> None:
    kafka.consumer.add(["a", "b"])
    kafka.consumer.add(["c"])
    seen: list[tuple[list[str], str]] = []

    class SkipEverything(FailurePolicy):
        def handle(
            self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
        ) -> Outcome:
            seen.append((values(events), runner.group_id))
            assert not isinstance(runner, ConsumerRunner)
            return Outcome.COMMIT

    kafka.run(lambda events: pytest.fail("the policy never calls the handler"), SkipEverything())
    assert seen == [(["a", "b", "c"], "g")]
    assert kafka.consumer.commits == [[(0, 3)]]


def test_a_policy_leaving_the_batch_uncommitted_is_obeyed(kafka: Setup) -> None:
    kafka.consumer.add(["a"])

    class GiveUp(FailurePolicy):
        def handle(
            self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
        ) -> Outcome:
            return Outcome.LEAVE_UNCOMMITTED

    kafka.run(lambda events: None, GiveUp())
    assert kafka.consumer.commits == []


def test_work_elsewhere_keeps_the_member_polling_with_partitions_paused(kafka: Setup) -> None:
    """What image-worker and job-worker need for work longer than max.poll.interval.ms."""
    kafka.consumer.add(["slow"])
    release = threading.Event()
    paused_while_working: list[set[int]] = []

    class OffThread(FailurePolicy):
        def __init__(self) -> None:
            self.pool = ThreadPoolExecutor(1)

        def handle(
            self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
        ) -> Outcome:
            future = self.pool.submit(handler, events)
            runner.pause_until(future.done)
            future.result()
            return Outcome.COMMIT

    def on_poll(consumer: FakeConsumer) -> None:
        paused_while_working.append(set(consumer.paused))
        if consumer.polls >= 3:
            release.set()

    kafka.consumer.on_poll = on_poll
    kafka.run(lambda events: None if release.wait(5) else pytest.fail("never polled"), OffThread())
    assert paused_while_working[:3] == [{0}, {0}, {0}]
    assert kafka.consumer.paused == set()
    assert kafka.consumer.commits == [[(0, 1)]]


def test_middleware_wraps_every_handler_call(kafka: Setup) -> None:
    kafka.consumer.add(["ok", "poison"])
    observed: list[tuple[int, str]] = []

    def observe(events: list[ConsumedEvent], call_next: BatchHandler) -> None:
        try:
            call_next(events)
            observed.append((len(events), "ok"))
        except Exception as exc:
            observed.append((len(events), type(exc).__name__))
            raise

    def handler(events: list[ConsumedEvent]) -> None:
        if "poison" in values(events):
            raise PermanentError("no")

    kafka.runner(handler, middleware=[observe]).run()
    assert observed == [(2, "PermanentError"), (1, "ok"), (1, "PermanentError")]
    assert len(kafka.dlq.published) == 1


def lag(group: str, partition: int) -> float | None:
    """The exported lag of ``TOPIC[partition]`` for ``group``; None: no such series."""
    labels = {"group": group, "topic": TOPIC, "partition": str(partition)}
    return metrics.REGISTRY.get_sample_value("kafka_consumer_lag", labels)


def test_the_default_metrics_count_handled_records_and_lag(kafka: Setup) -> None:
    group_ok = metrics.events_consumed_total.labels(TOPIC, "g", "ok")
    before = group_ok._value.get()
    kafka.consumer.watermark = 10
    kafka.consumer.add(["a", "b", "c"])
    seen: list[float | None] = []
    # One record per batch: each handler call sees the lag the previous commit left.
    kafka.run(lambda events: seen.append(lag("g", 0)), max_batch=1)
    assert group_ok._value.get() - before == 3
    assert seen[1:] == [9, 8]
    assert lag("g", 0) is None, "a member leaving the group removes its partitions' lag"


def _member(consumer: FakeConsumer, group: str = "g") -> GroupMembership:
    member = GroupMembership(consumer, group, consumer.stop, DeadLetters(FakeDlq(), group))  # type: ignore[arg-type]
    consumer.subscribe(
        [TOPIC], on_assign=member.on_assign, on_revoke=member.on_revoke, on_lost=member.on_revoke
    )
    return member


def test_lag_is_per_partition_from_positions_before_any_commit() -> None:
    consumer = FakeConsumer(StopSignal(), partitions=(0, 1))
    consumer.watermark = 10
    consumer.add(["a", "b"], partition=0)
    consumer.add(["c"], partition=1)
    member = _member(consumer, "before-commit")
    member.record_lag()
    assert (lag("before-commit", 0), lag("before-commit", 1)) == (10, 10)
    member.forget_all_lag()


def test_lag_refreshes_on_each_cycle_and_after_a_commit_not_only_then() -> None:
    consumer = FakeConsumer(StopSignal(), partitions=(0,))
    consumer.watermark = 5
    member = _member(consumer, "cycles")
    member.record_lag()
    assert lag("cycles", 0) is None, "nothing fetched yet: unknown, not a made-up 5"
    consumer.add(["a", "b", "c"])
    consumer.consume(2, 0)
    member.record_lag(force=True)
    assert lag("cycles", 0) == 3, "from the position (two fetched), before any commit"
    member.commit({(TOPIC, 0): 0})
    assert lag("cycles", 0) == 4, "from the committed offset once there is one"
    consumer.watermark = 9  # more records arrived; no commit since
    member.record_lag(force=True)
    assert lag("cycles", 0) == 8
    member.forget_all_lag()


def test_two_members_in_one_process_each_report_their_own_partitions() -> None:
    """Two consumer threads of one group: neither overwrites the other; a rebalance moves
    a partition's series to its new owner and the old owner's child is removed."""
    first = FakeConsumer(StopSignal(), partitions=(0,))
    second = FakeConsumer(StopSignal(), partitions=(1,))
    first.watermark, second.watermark = 10, 20
    one, two = _member(first, "shared"), _member(second, "shared")
    one.commit({(TOPIC, 0): 3})
    two.commit({(TOPIC, 1): 4})
    assert (lag("shared", 0), lag("shared", 1)) == (6, 15)

    second.revoke(1)  # the rebalance: partition 1 moves to the first member
    assert lag("shared", 1) is None, "revoked: the old owner stops counting it"
    first.assign(1)
    one.commit({(TOPIC, 1): 7})
    assert (lag("shared", 0), lag("shared", 1)) == (6, 2)
    two.record_lag(force=True)
    assert lag("shared", 1) == 2, "the member without it leaves the new owner's value alone"
    one.forget_all_lag()
    assert (lag("shared", 0), lag("shared", 1)) == (None, None)


# -- ForwardToRetryTopic: a next policy, written without touching the loop -------------
TIERS = [RetryTier("retry-5s", 5.0), RetryTier("retry-1m", 60.0)]


def test_a_failing_record_moves_to_the_first_retry_tier(kafka: Setup) -> None:
    kafka.consumer.add(["ok", "bad"])
    forwarded = FakeDlq()
    calls: list[list[str]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(values(events))
        if "bad" in calls[-1]:
            raise ValueError("cannot do this job")

    kafka.run(handler, ForwardToRetryTopic(forwarded, TIERS, **FAST))  # type: ignore[arg-type]
    assert calls == [["ok", "bad"], ["ok"], ["bad"]], "each record tried alone once"
    assert [r.topic for r in forwarded.published] == ["orders.retry-5s"]
    headers = forwarded.headers()
    assert headers["retry-tier"] == "0"
    assert headers["retry-original-topic"] == TOPIC
    assert 4 < float(headers["retry-not-before"]) - time.time() <= 5.001  # ms precision
    assert headers["dlq-error-type"] == "ValueError"
    assert headers["x-request-id"] == "req-bad"
    assert kafka.dlq.published == []
    assert kafka.consumer.commits == [[(0, 2)]]


def test_after_the_last_tier_a_record_goes_to_its_original_topics_dlq(kafka: Setup) -> None:
    kafka.consumer.add(
        ["bad"],
        headers={
            "retry-tier": "1",
            "retry-original-topic": "jobs",
            "dlq-error": "the earlier failure",
        },
    )
    forwarded = FakeDlq()

    def handler(events: list[ConsumedEvent]) -> None:
        raise ValueError("still cannot")

    kafka.run(handler, ForwardToRetryTopic(forwarded, TIERS, **FAST))  # type: ignore[arg-type]
    assert forwarded.published == []
    assert [r.topic for r in kafka.dlq.published] == ["jobs.dlq"]
    dead = [k for k, _ in kafka.dlq.published[0].headers]
    assert dead.count("dlq-error") == 1, "the earlier failure's headers are replaced"
    assert kafka.dlq.headers()["dlq-error"] == "still cannot"
    assert kafka.consumer.commits == [[(0, 1)]]


def test_a_permanent_error_skips_the_tiers(kafka: Setup) -> None:
    kafka.consumer.add(["refused"])
    forwarded = FakeDlq()

    def handler(events: list[ConsumedEvent]) -> None:
        raise PermanentError("never")

    kafka.run(handler, ForwardToRetryTopic(forwarded, TIERS, **FAST))  # type: ignore[arg-type]
    assert forwarded.published == []
    assert [r.topic for r in kafka.dlq.published] == ["orders.dlq"]


def test_a_tier_record_is_handled_only_after_its_delay_partitions_paused(kafka: Setup) -> None:
    not_before = time.time() + 0.1
    kafka.consumer.add(
        ["later"], headers={"retry-tier": "0", "retry-not-before": f"{not_before:.3f}"}
    )
    called_at: list[float] = []
    kafka.run(
        lambda events: called_at.append(time.time()), ForwardToRetryTopic(FakeDlq(), TIERS, **FAST)
    )  # type: ignore[arg-type]
    assert called_at[0] >= not_before - 0.001
    assert kafka.consumer.pauses == 1
    assert kafka.consumer.polls > 0, "still serving the group while waiting"
    assert kafka.consumer.commits == [[(0, 1)]]


def test_a_dependency_outage_is_retried_in_place_not_forwarded(kafka: Setup) -> None:
    kafka.consumer.add(["a"])
    forwarded = FakeDlq()
    calls: list[list[str]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        calls.append(values(events))
        if len(calls) <= 2:
            raise TransientError("database is down")

    kafka.run(handler, ForwardToRetryTopic(forwarded, TIERS, **FAST))  # type: ignore[arg-type]
    assert calls == [["a"]] * 3
    assert forwarded.published == [] and kafka.dlq.published == []
    assert kafka.consumer.commits == [[(0, 1)]]
