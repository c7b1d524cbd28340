"""The consumers' side without a broker: job.enqueued to claims, retry tiers, the policies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from switchyard.errors import PermanentError
from switchyard.events import CloudEvent
from switchyard.jobs.records import ClaimedJob
from switchyard.kafka.policy import Outcome
from switchyard.kafka.records import ConsumedEvent
from switchyard_job_worker.dispatch import Dispatcher, DispatchPolicy, enqueued_job_id
from switchyard_job_worker.retries import Requeuer, RetryTierPolicy, not_before, retry_of

from .conftest import claimed

JOB_A = "5f0c5f0c-1111-4aaa-8bbb-000000000001"
JOB_B = "5f0c5f0c-1111-4aaa-8bbb-000000000002"


def record(
    event_type: str,
    data: Any,
    offset: int = 0,
    headers: list[tuple[str, bytes]] | None = None,
    timestamp_ms: int = 0,
) -> ConsumedEvent:
    value = CloudEvent(event_type, "/tests", data).to_json()
    return ConsumedEvent("jobs", 0, offset, None, value, headers or [], timestamp_ms)


class FakeRunner:
    group_id = "job-worker"

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.paused: list[float] = []
        self.polls = 0
        self.dead: list[tuple[ConsumedEvent, BaseException]] = []

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    def pause_for(self, seconds: float) -> bool:
        self.paused.append(seconds)
        return not self.stopping

    def pause_until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.polls += 1
            time.sleep(0.005)

    def is_assigned(self, event: ConsumedEvent) -> bool:
        return True

    def dead_letter(
        self, event: ConsumedEvent, error: BaseException, topic: str | None = None
    ) -> None:
        self.dead.append((event, error))


class Claims:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.submitted: list[ClaimedJob] = []

    def claim(self, ids: Sequence[str]) -> list[ClaimedJob]:
        self.asked.append(list(ids))
        return [claimed() for _ in ids]

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        self.submitted.extend(jobs)


# -- job.enqueued ---------------------------------------------------------------------
def test_a_job_enqueued_names_its_job_and_other_types_are_skipped() -> None:
    assert enqueued_job_id(record("job.enqueued", {"id": JOB_A.upper(), "type": "echo"})) == JOB_A
    assert enqueued_job_id(record("job.cancelled", {"id": JOB_A})) is None


@pytest.mark.parametrize("data", [{}, {"id": "not-a-uuid"}, {"id": 7}, [JOB_A], None])
def test_a_job_enqueued_without_a_valid_id_is_permanent(data: Any) -> None:
    with pytest.raises(PermanentError, match=r"data\.id"):
        enqueued_job_id(record("job.enqueued", data))


def test_one_claim_per_batch_each_job_once() -> None:
    claims = Claims()
    dispatcher = Dispatcher(claims.claim, claims.submit)
    dispatcher([record("job.enqueued", {"id": i}) for i in (JOB_A, JOB_B, JOB_A)])
    assert claims.asked == [[JOB_A, JOB_B]]
    assert len(claims.submitted) == 2


def test_the_policy_waits_for_room_before_claiming() -> None:
    claims, runner = Claims(), FakeRunner()
    room = threading.Event()
    policy = DispatchPolicy(room.is_set)
    threading.Timer(0.1, room.set).start()
    outcome = policy.handle(
        [record("job.enqueued", {"id": JOB_A})], Dispatcher(claims.claim, claims.submit), runner
    )
    assert outcome is Outcome.COMMIT
    assert runner.polls > 0 and claims.asked == [[JOB_A]]


def test_a_stop_while_waiting_for_room_leaves_the_batch_unclaimed_and_uncommitted() -> None:
    claims, runner = Claims(), FakeRunner()
    threading.Timer(0.1, runner.stop.set).start()
    outcome = DispatchPolicy(lambda: False).handle(
        [record("job.enqueued", {"id": JOB_A})], Dispatcher(claims.claim, claims.submit), runner
    )
    assert outcome is Outcome.LEAVE_UNCOMMITTED
    assert claims.asked == []


def test_a_bad_record_is_dead_lettered_and_the_others_claimed() -> None:
    claims, runner = Claims(), FakeRunner()
    events = [record("job.enqueued", {"id": JOB_A}), record("job.enqueued", {"id": "x"}, 1)]
    outcome = DispatchPolicy(lambda: True).handle(
        events, Dispatcher(claims.claim, claims.submit), runner
    )
    assert outcome is Outcome.COMMIT
    assert [(e.offset, type(err)) for e, err in runner.dead] == [(1, PermanentError)]
    assert claims.asked == [[JOB_A]]


# -- retry tiers ----------------------------------------------------------------------
def test_a_job_retry_names_its_job_and_attempt() -> None:
    assert retry_of(record("job.retry", {"id": JOB_A, "attempt": 2})) == (JOB_A, 2)
    assert retry_of(record("job.enqueued", {"id": JOB_A})) is None
    for bad in ({"id": JOB_A}, {"id": JOB_A, "attempt": True}, {"id": "x", "attempt": 1}):
        with pytest.raises(PermanentError):
            retry_of(record("job.retry", bad))


def test_not_before_comes_from_the_header_else_the_data_and_is_capped_by_the_tier() -> None:
    now = time.time()
    written = int(now * 1000)
    header = [("retry-not-before", f"{now + 3:.3f}".encode())]
    data = {"id": JOB_A, "attempt": 1, "not_before": now + 99}
    assert not_before(record("job.retry", data, headers=header, timestamp_ms=written), 5) == (
        pytest.approx(now + 3, abs=0.01)
    )
    assert not_before(record("job.retry", data), 5) == pytest.approx(now + 99)
    iso = datetime.fromtimestamp(now + 4, UTC).isoformat()
    assert not_before(record("job.retry", {**data, "not_before": iso}), 5) == pytest.approx(
        now + 4, abs=0.01
    )
    # A record written now is due within its tier's delay, whatever it says.
    capped = not_before(record("job.retry", data, timestamp_ms=written), 5)
    assert capped == pytest.approx(now + 5, abs=0.01)


def test_the_tier_policy_requeues_each_record_once_it_is_due_in_due_order() -> None:
    runner, requeued = FakeRunner(), []
    runner.pause_for = lambda seconds: time.sleep(seconds) or True  # type: ignore[method-assign]
    now = time.time()
    later, sooner = now + 0.4, now + 0.2
    events = [
        record("job.retry", {"id": JOB_B, "attempt": 3, "not_before": later}),
        record("job.retry", {"id": JOB_A, "attempt": 1, "not_before": sooner}, 1),
        record("job.retry", {"id": JOB_A, "attempt": 1, "not_before": sooner}, 2),
    ]

    def requeue(due: Sequence[tuple[str, int]]) -> int:
        requeued.append((list(due), time.time()))
        return len(due)

    policy = RetryTierPolicy(tier_delay_seconds=5)
    assert policy.handle(events, Requeuer(requeue), runner) is Outcome.COMMIT
    assert [due for due, _ in requeued] == [[(JOB_A, 1)], [(JOB_B, 3)]]
    assert requeued[0][1] >= sooner and requeued[1][1] >= later  # never before due


def test_a_stop_while_the_tier_waits_leaves_the_rest_uncommitted() -> None:
    runner, requeued = FakeRunner(), []
    runner.stop.set()
    events = [record("job.retry", {"id": JOB_A, "attempt": 1, "not_before": time.time() + 60})]
    handler = Requeuer(lambda due: requeued.append(list(due)) or len(due))  # type: ignore[func-returns-value]
    assert RetryTierPolicy(120).handle(events, handler, runner) is Outcome.LEAVE_UNCOMMITTED
    assert requeued == []
