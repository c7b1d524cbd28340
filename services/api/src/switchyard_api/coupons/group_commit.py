"""Group commit: the threads of one process that want the same key share one transaction.

The first thread to arrive for a key becomes its leader and runs a batch of one. Threads
arriving while a batch runs queue up; when it ends, the leader hands leadership to the
first of them, which runs everything queued (up to ``max_batch``) as the next batch, in
arrival order. Nobody waits for a timer: under load the batches grow by themselves, when
idle a claim runs alone at once. A leader runs exactly one batch, the one holding its own
item, so no request thread is kept working for others after its answer is known.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from switchyard import metrics

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatchFailed(RuntimeError):
    """The batch holding this item failed; nothing of it was committed, or it is unknown."""


@dataclass(eq=False)
class _Waiter(Generic[Item, Result]):
    item: Item
    woken: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self, run: Callable[[str, list[Item]], Sequence[Result]], max_batch: int, metric_label: str
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._metric_label = metric_label
        self._mutex = threading.Lock()
        # A key is present while a batch for it runs; its deque holds the threads waiting.
        self._queues: dict[str, deque[_Waiter[Item, Result]]] = {}

    def submit(self, key: str, item: Item) -> Result:
        waiter: _Waiter[Item, Result] = _Waiter(item)
        with self._mutex:
            queue = self._queues.get(key)
            if queue is None:
                self._queues[key] = deque()
                waiter.leads = True
            else:
                queue.append(waiter)
        if not waiter.leads:
            waiter.woken.wait()
        if waiter.leads:
            self._lead(key, waiter)
        if waiter.error is not None:
            raise BatchFailed(str(waiter.error)) from waiter.error
        return waiter.result  # type: ignore[return-value]

    def _lead(self, key: str, own: _Waiter[Item, Result]) -> None:
        with self._mutex:
            queue = self._queues[key]
            batch = [own] + [queue.popleft() for _ in range(min(len(queue), self._max_batch - 1))]
        try:
            results = self._run(key, [waiter.item for waiter in batch])
            for waiter, result in zip(batch, results, strict=True):
                waiter.result = result
        except BaseException as exc:
            # Every waiter learns of the failure; none is left hanging or told a guess.
            for waiter in batch:
                waiter.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._mutex:
                queue = self._queues[key]
                successor = queue.popleft() if queue else None
                if successor is None:
                    del self._queues[key]
                else:
                    successor.leads = True
            for waiter in batch[1:]:
                waiter.woken.set()
            if successor is not None:
                successor.woken.set()
        metrics.batch_size.labels(self._metric_label).observe(len(batch))
