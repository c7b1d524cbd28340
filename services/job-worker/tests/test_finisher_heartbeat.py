"""The finisher (batches, retries, nothing dropped) and the heartbeat (lost leases)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy.exc

from switchyard import metrics
from switchyard.jobs.records import AttemptOutcome, AttemptResult
from switchyard_job_worker.finisher import Finisher
from switchyard_job_worker.heartbeat import Heartbeat

from .conftest import claimed, wait_for


def result(outcome: AttemptOutcome = "succeeded", **job: object) -> AttemptResult:
    now = datetime.now(UTC)
    return AttemptResult(claimed(**job), outcome, now, now)  # type: ignore[arg-type]


def down() -> Exception:
    return sqlalchemy.exc.OperationalError("UPDATE jobs", {}, Exception("connection refused"))


class FakeStore:
    """``finish``: records each call; fails the first ``failures`` calls with ``error``."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.calls: list[list[AttemptResult]] = []
        self.failures = failures
        self.error = error or down()
        self.refuse: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.settled: list[int] = []

    def write(self, results: Sequence[AttemptResult]) -> list[AttemptResult]:
        self.gate.wait(10)
        self.calls.append(list(results))
        if self.failures:
            self.failures -= 1
            raise self.error
        return [r for r in results if r.job.lease_token in self.refuse]

    def settle(self, tokens: Sequence[int]) -> None:
        self.settled.extend(tokens)


def test_results_waiting_together_are_written_in_batches_of_at_most_max_batch() -> None:
    store = FakeStore()
    finisher = Finisher(store.write, store.settle, max_batch=50, gather_seconds=0.05)
    results = [result() for _ in range(120)]
    for each in results:
        finisher.submit(each)
    finisher.start()
    wait_for(lambda: len(store.settled) == 120)
    assert [len(call) for call in store.calls] == [50, 50, 20]
    assert [r for call in store.calls for r in call] == results
    assert finisher.close(1) == 0


def test_a_batch_is_retried_while_postgres_is_down_and_none_is_dropped() -> None:
    store = FakeStore(failures=3)
    finisher = Finisher(store.write, store.settle, 50, 0.01, retry_base_seconds=0.01).start()
    results = [result() for _ in range(5)]
    for each in results:
        finisher.submit(each)
    wait_for(lambda: len(store.settled) == 5)
    assert len(store.calls) >= 4
    assert sorted(store.settled) == sorted(r.job.lease_token for r in results)
    assert finisher.close(1) == 0


def test_a_refused_result_is_not_counted_and_a_dead_job_is() -> None:
    store = FakeStore()
    finisher = Finisher(store.write, store.settle, 50, 0.01).start()
    stale = result("succeeded", job_type="fence-test")
    dead = result("failed", job_type="fence-test", attempt=3, max_attempts=3)
    retried = result("timed_out", job_type="fence-test", attempt=1, max_attempts=3)
    store.refuse.add(stale.job.lease_token)
    counted = metrics.jobs_processed_total.labels("fence-test", "succeeded")
    failures, retries = (
        metrics.worker_failures_total.labels("jobs"),
        metrics.worker_retries_total.labels("jobs"),
    )
    before = (counted._value.get(), failures._value.get(), retries._value.get())
    for each in (stale, dead, retried):
        finisher.submit(each)
    wait_for(lambda: len(store.settled) == 3)
    after = (counted._value.get(), failures._value.get(), retries._value.get())
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, 1, 1]
    finisher.close(1)


def test_a_result_the_database_keeps_refusing_is_isolated_and_given_up() -> None:
    class Picky(FakeStore):
        def write(self, results: Sequence[AttemptResult]) -> list[AttemptResult]:
            self.calls.append(list(results))
            if any(r.job.lease_token == bad.job.lease_token for r in results):
                raise ValueError("a bug in the SQL for this one")
            return []

    store = Picky()
    bad, good = result(), result()
    finisher = Finisher(store.write, store.settle, 50, 0.05)
    finisher.submit(bad)
    finisher.submit(good)
    finisher.start()
    wait_for(lambda: len(store.settled) == 2)
    assert [len(c) for c in store.calls] == [2, 1, 1]  # the batch, then each alone
    # Given up = no longer held: its lease expires, and the reaper runs the job again.
    assert finisher.close(1) == 1


def test_close_gives_up_after_its_deadline_when_postgres_stays_down() -> None:
    store = FakeStore(failures=10**6)
    finisher = Finisher(store.write, store.settle, 50, 0.01, retry_base_seconds=0.05).start()
    finisher.submit(result())
    assert finisher.close(0.5) == 1
    assert len(store.settled) == 1


class FakePool:
    def __init__(self, leases: dict[int, float]) -> None:
        self.leases = leases
        self.lost_tokens: list[tuple[set[int], str]] = []

    def held_leases(self) -> dict[int, float]:
        return dict(self.leases)

    def lost(self, tokens: Sequence[int] | set[int], why: str) -> None:
        self.lost_tokens.append((set(tokens), why))
        for token in tokens:
            self.leases.pop(token, None)


def test_a_token_the_renewal_does_not_return_is_cancelled() -> None:
    pool = FakePool({1: 0.0, 2: 0.0, 3: 0.0})
    renewed: list[list[int]] = []

    def renew(tokens: Sequence[int]) -> set[int]:
        renewed.append(sorted(tokens))
        return {1, 3}

    Heartbeat(renew, pool, lease_seconds=30).beat()
    assert renewed == [[1, 2, 3]]
    assert pool.lost_tokens == [({2}, "lease taken back")]


def test_when_renewing_fails_jobs_whose_lease_may_have_expired_are_cancelled() -> None:
    import time

    now = time.monotonic()
    pool = FakePool({1: now - 100, 2: now})  # 1 claimed long ago, 2 just now

    def renew(tokens: Sequence[int]) -> set[int]:
        raise down()

    heartbeat = Heartbeat(renew, pool, lease_seconds=30)
    heartbeat.beat()
    assert pool.lost_tokens == [({1}, "lease not renewed in time")]
    heartbeat.beat()  # 2 is recent: kept
    assert pool.leases.keys() == {2}
