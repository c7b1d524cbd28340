"""The image-worker's failure policy: work off the consumer thread, poison marks failed.

On top of :class:`~switchyard.kafka.policy.RetryInPlaceThenDeadLetter` (a dependency
down, e.g. PostgreSQL: the batch is retried in place, partitions paused, for as long as
it takes; anything else: each record retried alone, then given up):

- The handler runs in this policy's own worker thread while the consumer thread waits in
  ``runner.pause_until``, polling with its partitions paused: a product that takes
  minutes never exceeds ``max.poll.interval.ms`` nor triggers a rebalance.
- A poison event (not a CloudEvent; a ``product.created`` without a valid
  ``data.product_id``) is dead-lettered at once, without reaching the handler; if it
  names an unfinished product (``data.product_id`` or the record key), that product is
  marked ``failed``, each image with reason ``poison_event``.
- A record given up (processing failed ``max_attempts`` times for a reason other than a
  dependency) is dead-lettered and its product marked ``failed`` (``processing_failed``):
  a product never stays ``pending`` or ``processing`` because of its event.
- The runner commits a batch only once this returns ``Outcome.COMMIT``: after every
  product's final UPDATE (or its event was dead-lettered). A worker that dies before
  leaves the batch uncommitted; the next member processes those products again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import structlog

from switchyard import metrics
from switchyard.config import ImageWorkerSettings
from switchyard.errors import is_transient
from switchyard.events import InvalidEvent
from switchyard.kafka.policy import Outcome, RetryInPlaceThenDeadLetter, RunnerControls
from switchyard.kafka.records import BatchHandler, ConsumedEvent
from switchyard.logging import bind_context, get_logger
from switchyard_image_worker.handler import named_product, product_job
from switchyard_image_worker.products import ProductRows

log = get_logger(__name__)

POISON_EVENT = "poison_event"
PROCESSING_FAILED = "processing_failed"


class ImageWorkerPolicy(RetryInPlaceThenDeadLetter):
    def __init__(self, rows: ProductRows, settings: ImageWorkerSettings) -> None:
        super().__init__(
            settings.max_attempts, settings.retry_base_seconds, settings.retry_cap_seconds
        )
        self.rows = rows
        # The worker thread logs with this thread's context (the service's name).
        self._worker = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="products",
            initializer=partial(bind_context, **structlog.contextvars.get_contextvars()),
        )

    def handle(
        self, events: list[ConsumedEvent], handler: BatchHandler, runner: RunnerControls
    ) -> Outcome:
        valid: list[ConsumedEvent] = []
        for event in events:
            try:
                product_job(event)
            except InvalidEvent as exc:
                self._poison(event, exc, runner)
            else:
                valid.append(event)
        if not valid:
            return Outcome.COMMIT
        return super().handle(valid, self._off_thread(handler, runner), runner)

    def _off_thread(self, handler: BatchHandler, runner: RunnerControls) -> BatchHandler:
        def call(events: list[ConsumedEvent]) -> None:
            future = self._worker.submit(handler, events)
            runner.pause_until(future.done)  # keeps serving the group meanwhile
            future.result()  # the handler's exception, for the policy to judge

        return call

    def undecodable(
        self, event: ConsumedEvent, error: InvalidEvent, runner: RunnerControls
    ) -> None:
        self._poison(event, error, runner)

    def give_up(self, event: ConsumedEvent, error: Exception, runner: RunnerControls) -> None:
        runner.dead_letter(event, error)
        metrics.worker_failures_total.labels("products").inc()
        product_id = named_product(event)
        if product_id is not None:
            message = f"processing failed: {type(error).__name__}: {error}"
            self._mark_failed(product_id, PROCESSING_FAILED, message, runner)

    def close(self) -> None:
        self._worker.shutdown(wait=True)

    def _poison(self, event: ConsumedEvent, error: Exception, runner: RunnerControls) -> None:
        runner.dead_letter(event, error)
        product_id = named_product(event)
        if product_id is not None:
            self._mark_failed(product_id, POISON_EVENT, f"unusable event: {error}", runner)

    def _mark_failed(
        self, product_id: int, reason: str, message: str, runner: RunnerControls
    ) -> None:
        """Mark the product failed; retried while PostgreSQL is down, unless stopping."""
        attempt = 0
        while True:
            try:
                marked = self.rows.fail_unfinished(product_id, reason, message)
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("could not mark the product failed", product_id=product_id)
                    return
                attempt += 1
                if runner.pause_for(self.delay(attempt)):
                    continue
                log.error(
                    "stopping before the product could be marked failed",
                    product_id=product_id,
                    reason=reason,
                )
                return
            if marked:
                metrics.products_processed_total.labels("failed").inc()
                log.warning("product marked failed", product_id=product_id, reason=reason)
            return
