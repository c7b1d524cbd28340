"""Group commit on its own: batching, order, failures, and no thread left waiting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from switchyard_api.coupons.group_commit import BatchFailed, GroupCommit


class Recorder:
    def __init__(self, pause: float = 0.01, fail_when: int | None = None) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.pause = pause
        self.fail_when = fail_when
        self.running: set[str] = set()
        self.overlaps: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, key: str, items: list[int]) -> list[int]:
        with self._lock:
            if key in self.running:
                self.overlaps.append(key)
            self.running.add(key)
            self.batches.append((key, items))
        time.sleep(self.pause)
        with self._lock:
            self.running.discard(key)
        if self.fail_when is not None and self.fail_when in items:
            raise RuntimeError("database went away")
        return [item * 10 for item in items]


def _submit_all(group: GroupCommit[int, int], keys: list[str]) -> list[int | str]:
    def one(index: int) -> int | str:
        try:
            return group.submit(keys[index], index)
        except BatchFailed as exc:
            return f"failed: {exc}"

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return list(pool.map(one, range(len(keys))))


def test_every_waiter_gets_its_own_answer_from_shared_batches() -> None:
    run = Recorder()
    group = GroupCommit(run, max_batch=8, metric_label="test")
    results = _submit_all(group, ["C"] * 64)
    assert results == [index * 10 for index in range(64)]
    sizes = [len(items) for _, items in run.batches]
    assert sum(sizes) == 64 and max(sizes) <= 8
    assert len(run.batches) < 64  # concurrent submitters were combined
    assert not run.overlaps  # one batch at a time per key


def test_keys_do_not_wait_for_each_other() -> None:
    run = Recorder(pause=0.05)
    group = GroupCommit(run, max_batch=100, metric_label="test")
    started = time.monotonic()
    _submit_all(group, [f"K{n}" for n in range(10)])
    assert time.monotonic() - started < 0.4  # ten keys at once, not one after another


def test_a_failed_batch_fails_each_of_its_waiters_and_only_them() -> None:
    run = Recorder(fail_when=5)
    group = GroupCommit(run, max_batch=4, metric_label="test")
    results = _submit_all(group, ["C"] * 20)
    failed_batch = next(items for _, items in run.batches if 5 in items)
    for index, result in enumerate(results):
        if index in failed_batch:
            assert result == "failed: database went away"
        else:
            assert result == index * 10
    assert group.submit("C", 7) == 70  # and the key works afterwards


def test_a_lone_submit_runs_at_once() -> None:
    run = Recorder(pause=0)
    group = GroupCommit(run, max_batch=8, metric_label="test")
    started = time.monotonic()
    assert group.submit("C", 3) == 30
    assert time.monotonic() - started < 0.05
    assert run.batches == [("C", [3])]


def test_items_keep_their_arrival_order_inside_a_batch() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def run(_: str, items: list[int]) -> list[int]:
        batches.append(items)
        release.wait(5)
        return items

    group = GroupCommit(run, max_batch=100, metric_label="test")
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(group.submit, "C", 0)
        time.sleep(0.05)  # the leader is now inside its batch; the rest queue up in order
        rest = []
        for item in range(1, 6):
            rest.append(pool.submit(group.submit, "C", item))
            time.sleep(0.02)
        release.set()
        assert [future.result() for future in (first, *rest)] == list(range(6))
    assert batches == [[0], [1, 2, 3, 4, 5]]


@pytest.mark.parametrize("max_batch", [1, 3])
def test_max_batch_is_respected(max_batch: int) -> None:
    run = Recorder()
    group = GroupCommit(run, max_batch=max_batch, metric_label="test")
    _submit_all(group, ["C"] * 12)
    assert all(len(items) <= max_batch for _, items in run.batches)
