"""One product's images: download concurrently, compress off the event loop, store.

Guarantees of :meth:`ImagePipeline.process`:

- Every image ends as exactly one stored path (relative to ``MEDIA_ROOT``) or one
  :class:`~switchyard_image_worker.products.ImageError` with a stable ``reason``; the
  result lists them in the order of the source URLs.
- Downloads run concurrently within the :class:`~switchyard.fetch.fetcher.Fetcher`'s
  global and per-host limits. A transient failure (timeout, 5xx, 429, connection, DNS)
  is retried with exponential backoff and full jitter, at most ``fetch_attempts`` times
  and not past ``fetch_retry_budget_seconds``; the wait is an ``asyncio.sleep``, so other
  images and products go on. A permanent failure fails the image at once.
- At most ``max_images_in_flight`` images are held (downloading, waiting, compressing),
  and at most ``compress_workers`` are decoded at once (a thread pool): memory is bounded
  by about ``max_images_in_flight x FETCH__MAX_BYTES`` plus ``compress_workers`` decoded
  images of at most ``max_pixels`` each.
- Stored paths are content-addressed (:class:`~switchyard_image_worker.store.MediaStore`):
  the same source bytes with the same settings give the same path, made once.
- An error of the machine itself (the disk, a bug) is raised, not stored as an image
  error: the product is retried, and given up only by the consumer policy.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from switchyard import metrics
from switchyard.backoff import backoff_delay
from switchyard.config import ImageWorkerSettings
from switchyard.fetch.errors import FetchError, TransientFetchError
from switchyard.fetch.fetcher import Fetched, Fetcher
from switchyard.logging import get_logger
from switchyard_image_worker.compressor import Compressed, CompressOptions, ImageRejected, compress
from switchyard_image_worker.products import ImageDetail, ImageError, ProductResult
from switchyard_image_worker.store import MediaStore

log = get_logger(__name__)


@dataclass(frozen=True)
class _Stored:
    relative: str
    variant: str
    width: int
    height: int
    bytes_out: int
    made: bool


class ImagePipeline:
    def __init__(
        self,
        settings: ImageWorkerSettings,
        fetcher: Fetcher,
        store: MediaStore,
        pool: ThreadPoolExecutor,
        max_images_in_flight: int | None = None,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.store = store
        self.pool = pool
        self.options = CompressOptions.from_settings(settings)
        self.fingerprint = self.options.fingerprint()
        self._in_flight = asyncio.Semaphore(max_images_in_flight or settings.max_images_in_flight)

    async def process(self, urls: list[str]) -> ProductResult:
        """Each image stored or failed, in order (see the module's guarantees)."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._image(i, url)) for i, url in enumerate(urls)]
        result = ProductResult(paths=[None] * len(urls))
        for task in tasks:
            outcome = task.result()
            if isinstance(outcome, ImageError):
                result.errors.append(outcome)
            else:
                result.paths[outcome.index] = outcome.path
                result.details.append(outcome)
        return result

    async def _image(self, index: int, url: str) -> ImageDetail | ImageError:
        async with self._in_flight:
            try:
                fetched = await self._download(url)
            except FetchError as exc:
                return _failed(index, url, exc.reason, str(exc))
            content = fetched.content
            metrics.image_bytes_total.labels("in").inc(len(content))
            loop = asyncio.get_running_loop()
            try:
                stored = await loop.run_in_executor(self.pool, self._store, content)
            except ImageRejected as exc:
                return _failed(index, url, exc.reason, str(exc))
        metrics.image_bytes_total.labels("out").inc(stored.bytes_out)
        metrics.images_processed_total.labels("ok", "compressed" if stored.made else "reused").inc()
        return ImageDetail(
            index,
            stored.relative,
            stored.variant,
            stored.width,
            stored.height,
            len(content),
            stored.bytes_out,
        )

    async def _download(self, url: str) -> Fetched:
        settings = self.settings
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            began = time.perf_counter()
            try:
                return await self.fetcher.fetch_image(url)
            except TransientFetchError as exc:
                delay = backoff_delay(
                    attempt, settings.fetch_retry_base_seconds, settings.fetch_retry_cap_seconds
                )
                spent = time.monotonic() - started
                if (
                    attempt >= settings.fetch_attempts
                    or spent + delay > settings.fetch_retry_budget_seconds
                ):
                    raise
                metrics.worker_retries_total.labels("image_fetch").inc()
                log.info(
                    "image download failed; retrying",
                    url=url,
                    reason=exc.reason,
                    error=str(exc)[:300],
                    attempt=attempt,
                    retry_in=round(delay, 3),
                )
            finally:
                metrics.image_download_seconds.observe(time.perf_counter() - began)
            await asyncio.sleep(delay)

    # -- in the thread pool ----------------------------------------------------------
    def _store(self, content: bytes) -> _Stored:
        stored = self.store.put(content, self.fingerprint, self._compress)
        made = stored.made
        if made is not None:
            return _Stored(
                stored.relative, made.variant, made.width, made.height, len(made.data), True
            )
        # Made earlier (another product, an earlier attempt): describe the file as it is.
        size = stored.path.stat().st_size
        with Image.open(stored.path) as image:
            width, height = image.size
        variant = (
            "source" if size == len(content) and stored.path.read_bytes() == content else "resized"
        )
        return _Stored(stored.relative, variant, width, height, size, False)

    def _compress(self, content: bytes) -> Compressed:
        began = time.perf_counter()
        try:
            return compress(content, self.options)
        finally:
            metrics.image_compress_seconds.observe(time.perf_counter() - began)


def _failed(index: int, url: str, reason: str, message: str) -> ImageError:
    metrics.images_processed_total.labels("failed", reason).inc()
    metrics.worker_failures_total.labels("images").inc()
    log.warning("image failed", index=index, url=url, reason=reason, error=message[:300])
    return ImageError(index, url, reason, message)
