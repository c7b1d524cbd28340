"""The image-worker's main loop: one consumer of ``product.created``, one event loop.

Pieces, each in its own module: the consumer policy (:mod:`.policy`: work off the
consumer thread, retries, poison events), events to products (:mod:`.handler`), one
product's images (:mod:`.pipeline`), the SQL (:mod:`.products`), the periodic chores
(:mod:`.housekeeping`), compression (:mod:`.compressor`) and files (:mod:`.store`).

Files go under ``MEDIA_ROOT`` (created if missing); ``compressed_product_images`` holds
paths relative to it (``ab/cd/<sha256>.jpg``), so the directory can move or be mounted
elsewhere (the API, a CDN) without rewriting rows. Temp files a crash left are swept at
start, before anything is consumed, and then periodically.
"""

from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from switchyard.fetch.fetcher import Fetcher
from switchyard.kafka.consumer import ConsumerRunner, RunnerOptions
from switchyard.kafka.topics import PRODUCTS, topic_name
from switchyard.logging import get_logger
from switchyard.service import WorkerContext
from switchyard_image_worker.handler import (
    EventLoopThread,
    ProductHandler,
    ProductProcessor,
)
from switchyard_image_worker.housekeeping import Housekeeping, sweep
from switchyard_image_worker.pipeline import ImagePipeline
from switchyard_image_worker.policy import ImageWorkerPolicy
from switchyard_image_worker.products import ProductRows
from switchyard_image_worker.store import MediaStore

log = get_logger(__name__)


def run(context: WorkerContext) -> None:
    settings, stop = context.settings, context.stop
    config = settings.image_worker
    media_root = settings.media_root.absolute()
    media_root.mkdir(parents=True, exist_ok=True)

    def media_writable() -> None:
        if not os.access(media_root, os.W_OK | os.X_OK):
            raise PermissionError(f"{media_root} is not writable")

    context.readiness.add("media", media_writable)
    store = MediaStore(media_root)
    sweep(store, config.sweep_min_age_seconds)
    rows = ProductRows(context.engine)
    loop = EventLoopThread().start()
    pool = ThreadPoolExecutor(max_workers=config.compress_workers, thread_name_prefix="compress")
    fetcher = Fetcher(settings.fetch)
    pipeline = ImagePipeline(config, fetcher, store, pool)
    handler = ProductHandler(ProductProcessor(rows, pipeline), loop)
    policy = ImageWorkerPolicy(rows, config)
    housekeeping = Housekeeping(rows, store, config, stop, topic_name(settings, PRODUCTS)).start()
    runner = ConsumerRunner(
        settings,
        f"{settings.kafka.topic_prefix}image-worker",
        [topic_name(settings, PRODUCTS)],
        handler,
        context.producer,
        stop,
        RunnerOptions(max_batch=config.max_batch, max_wait_seconds=config.batch_wait_seconds),
        policy=policy,
    )
    crashed: list[BaseException] = []

    def consume() -> None:
        try:
            runner.run()
        except BaseException as exc:
            crashed.append(exc)
            log.exception("consumer crashed; stopping the image-worker")
            stop.set()

    # Threads start with an empty context: this one logs with the service's name too.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(consume,), name="consumer"
    )
    thread.start()
    log.info(
        "image-worker running",
        media_root=str(media_root),
        max_batch=config.max_batch,
        compress_workers=config.compress_workers,
    )
    try:
        while thread.is_alive():
            thread.join(0.5)  # short waits keep the main thread free for SIGTERM
    finally:
        policy.close()
        loop.run(fetcher.close())
        loop.stop()
        pool.shutdown(wait=True)
        housekeeping.join()
    if crashed:
        raise RuntimeError("the consumer crashed") from crashed[0]
