"""From ``product.created`` events to processed products.

* :func:`product_job`: what an event asks for; :class:`InvalidEvent` for a poison one
  (not a ``product.created`` with a positive integer ``data.product_id``). Other event
  types on the topic are skipped, so new ones can be added without breaking us.
* :class:`ProductProcessor` (async, on the worker's event loop): claim the row, run the
  :class:`~switchyard_image_worker.pipeline.ImagePipeline`, write the result in one
  UPDATE. The products of a batch run concurrently; logs carry ``product_id`` and the
  ``request_id`` of the POST that created the product (from the event's headers).
* :class:`ProductHandler`: the consumer runner's batch handler; it blocks its (policy
  worker) thread until the whole batch is written, and raises the first failure so the
  policy retries (products already finished are then skipped).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from switchyard import metrics
from switchyard.errors import is_transient
from switchyard.events import InvalidEvent
from switchyard.kafka.records import ConsumedEvent
from switchyard.logging import bind_context, get_logger
from switchyard_image_worker.pipeline import ImagePipeline
from switchyard_image_worker.products import ProductRows

log = get_logger(__name__)

PRODUCT_CREATED = "product.created"
_MAX_ID = 2**31 - 1  # products.product_id is an integer column

T = TypeVar("T")


@dataclass(frozen=True)
class ProductJob:
    product_id: int
    request_id: str | None


def _as_product_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and 0 < value <= _MAX_ID:
        return value
    return None


def product_job(event: ConsumedEvent) -> ProductJob | None:
    """The product to process; None for another event type; InvalidEvent if poison."""
    cloud_event = event.event  # InvalidEvent when the value is not a CloudEvent
    if cloud_event.type != PRODUCT_CREATED:
        return None
    data = cloud_event.data
    product_id = _as_product_id(data.get("product_id")) if isinstance(data, dict) else None
    if product_id is None:
        raise InvalidEvent("product.created without a valid data.product_id")
    return ProductJob(product_id, event.request_id)


def named_product(event: ConsumedEvent) -> int | None:
    """The product an event names, however broken it is: data.product_id, else its key."""
    try:
        data = event.event.data
        if isinstance(data, dict) and (found := _as_product_id(data.get("product_id"))):
            return found
    except InvalidEvent:
        pass
    try:
        return _as_product_id(event.key.decode("ascii")) if event.key else None
    except UnicodeDecodeError:
        return None


class ProductProcessor:
    def __init__(self, rows: ProductRows, pipeline: ImagePipeline) -> None:
        self.rows = rows
        self.pipeline = pipeline

    async def process_batch(self, jobs: list[ProductJob]) -> None:
        """Every product of the batch, concurrently; raises the first failure after all
        finished (a dependency's failure first, so the policy retries rather than gives up)."""
        outcomes = await asyncio.gather(
            *(self._process(job) for job in jobs), return_exceptions=True
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise next((e for e in errors if is_transient(e)), errors[0])

    async def _process(self, job: ProductJob) -> None:
        # A coroutine of gather runs as its own task: this binding is the product's alone.
        bind_context(product_id=job.product_id, request_id=job.request_id)
        try:
            await self.process(job.product_id)
        except Exception as exc:
            metrics.worker_retries_total.labels("products").inc()
            log.warning("product processing failed", error=f"{type(exc).__name__}: {exc}"[:500])
            raise

    async def process(self, product_id: int) -> None:
        urls = await asyncio.to_thread(self.rows.claim, product_id)
        if urls is None:
            log.info("product skipped: already finished, or gone")
            return
        log.info("processing product", images=len(urls))
        result = await self.pipeline.process(urls)
        await asyncio.to_thread(self.rows.finish, product_id, result)
        metrics.products_processed_total.labels(result.status).inc()
        log.info(
            "product processed",
            status=result.status,
            images=len(urls),
            failed=[(e.index, e.reason) for e in result.errors],
        )


class EventLoopThread:
    """An asyncio loop in its own thread; other threads hand it coroutines."""

    def __init__(self, name: str = "image-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self) -> EventLoopThread:
        self._thread.start()
        return self

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class ProductHandler:
    """The batch handler: the products of a batch, processed on the loop, then return."""

    def __init__(self, processor: ProductProcessor, loop: EventLoopThread) -> None:
        self.processor = processor
        self.loop = loop

    def __call__(self, events: list[ConsumedEvent]) -> None:
        jobs: dict[int, ProductJob] = {}
        for event in events:
            job = product_job(event)  # the policy has dead-lettered poison events already
            if job is not None:
                jobs.setdefault(job.product_id, job)  # the same product twice: once
        if jobs:
            self.loop.run(self.processor.process_batch(list(jobs.values())))
