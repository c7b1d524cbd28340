"""The image-worker's pieces without servers: events, the retry rules, the policy."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from switchyard.config import ImageWorkerSettings
from switchyard.events import CloudEvent, InvalidEvent
from switchyard.fetch.errors import FetchError, HttpRefused, ServerUnavailable
from switchyard.fetch.fetcher import Fetched, Fetcher
from switchyard.kafka.policy import Outcome
from switchyard.kafka.records import ConsumedEvent
from switchyard_image_worker.handler import named_product, product_job
from switchyard_image_worker.pipeline import ImagePipeline
from switchyard_image_worker.policy import ImageWorkerPolicy
from switchyard_image_worker.products import ProductRows
from switchyard_image_worker.store import MediaStore


def consumed(value: bytes, key: bytes | None = None) -> ConsumedEvent:
    return ConsumedEvent("products", 0, 1, key, value, [("x-request-id", b"req-1")], 0)


def created(data: Any, event_type: str = "product.created") -> bytes:
    return CloudEvent(event_type, "/tests", data).to_json()


# -- events --------------------------------------------------------------------------
@pytest.mark.parametrize("product_id", [7, "7"])
def test_a_product_created_event_names_its_product_and_request(product_id: object) -> None:
    job = product_job(consumed(created({"product_id": product_id})))
    assert job is not None and (job.product_id, job.request_id) == (7, "req-1")


@pytest.mark.parametrize(
    "data", [{}, {"product_id": None}, {"product_id": 0}, {"product_id": True}, [1], "7",
             {"product_id": 2**31}, {"product_id": "7a"}, {"product_id": 1.5}],
)  # fmt: skip
def test_a_product_created_event_without_a_valid_id_is_poison(data: Any) -> None:
    with pytest.raises(InvalidEvent):
        product_job(consumed(created(data)))


def test_other_event_types_are_skipped_and_garbage_is_poison() -> None:
    assert product_job(consumed(created({"x": 1}, "product.renamed"))) is None
    with pytest.raises(InvalidEvent):
        product_job(consumed(b"{not json"))


def test_a_poison_event_names_its_product_by_data_else_by_key() -> None:
    assert named_product(consumed(created({"product_id": 5}), b"6")) == 5
    assert named_product(consumed(b"garbage", b"6")) == 6
    assert named_product(consumed(created({}), b"6")) == 6
    assert named_product(consumed(b"garbage", b"\xff")) is None
    assert named_product(consumed(b"garbage", b"-3")) is None
    assert named_product(consumed(b"garbage")) is None


# -- the pipeline's retry rules ------------------------------------------------------
def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "blue").save(out, "JPEG")
    return out.getvalue()


class ScriptedFetcher:
    """Answers each URL from a list of outcomes, the last one repeated."""

    def __init__(self, script: dict[str, list[bytes | FetchError]]) -> None:
        self.script = script
        self.calls: dict[str, int] = {}

    async def fetch_image(self, url: str) -> Fetched:
        n = self.calls.get(url, 0)
        self.calls[url] = n + 1
        outcomes = self.script[url]
        outcome = outcomes[min(n, len(outcomes) - 1)]
        if isinstance(outcome, FetchError):
            raise outcome
        return Fetched(url, 200, outcome, "image/jpeg", "jpeg")


def run_pipeline(
    tmp_path: Path, script: dict[str, list[bytes | FetchError]], **settings: Any
) -> tuple[Any, ScriptedFetcher]:
    quick = {"fetch_retry_base_seconds": 0.01, "fetch_retry_cap_seconds": 0.02}
    config = ImageWorkerSettings(**{**quick, **settings})
    fetcher = ScriptedFetcher(script)
    with ThreadPoolExecutor(2) as pool:
        fake: Fetcher = fetcher  # type: ignore[assignment]
        pipeline = ImagePipeline(config, fake, MediaStore(tmp_path), pool)
        result = asyncio.run(pipeline.process(list(script)))
    return result, fetcher


def test_transient_failures_are_retried_and_permanent_ones_are_not(tmp_path: Path) -> None:
    busy = ServerUnavailable(503, url="u")
    result, fetcher = run_pipeline(
        tmp_path,
        {
            "recovers": [busy, busy, jpeg()],
            "missing": [HttpRefused(404, url="missing")],
            "down": [busy],
        },
        fetch_attempts=3,
    )
    assert fetcher.calls == {"recovers": 3, "missing": 1, "down": 3}
    assert result.status == "failed"
    assert [(e.index, e.reason) for e in result.errors] == [(1, "http_4xx"), (2, "http_5xx")]
    assert result.paths[0] and result.paths[1:] == [None, None]


def test_retries_stop_at_the_time_budget(tmp_path: Path) -> None:
    busy = ServerUnavailable(429, url="u")
    result, fetcher = run_pipeline(
        tmp_path,
        {"slow": [busy]},
        fetch_attempts=20,
        fetch_retry_cap_seconds=0.5,
        fetch_retry_base_seconds=0.5,
        fetch_retry_budget_seconds=0.6,
    )
    assert fetcher.calls["slow"] < 20
    assert [e.reason for e in result.errors] == ["http_429"]


def test_the_same_image_twice_is_one_file_described_twice(tmp_path: Path) -> None:
    source = jpeg((3000, 1000))
    result, _ = run_pipeline(tmp_path, {"a": [source], "b": [source]}, longest_side=300)
    assert result.status == "done" and result.paths[0] == result.paths[1]
    assert [(d.width, d.height, d.variant) for d in result.details] == [(300, 100, "resized")] * 2


# -- the policy ----------------------------------------------------------------------
class FakeRows(ProductRows):
    def __init__(self) -> None:
        self.failed: list[tuple[int, str]] = []

    def fail_unfinished(self, product_id: int, reason: str, message: str) -> bool:
        self.failed.append((product_id, reason))
        return True


class FakeRunner:
    group_id = "image-worker"
    stopping = False

    def __init__(self) -> None:
        self.dead: list[tuple[ConsumedEvent, BaseException]] = []
        self.paused_threads: list[str] = []

    def pause_for(self, seconds: float) -> bool:
        return True

    def pause_until(self, done: Callable[[], bool]) -> None:
        while not done():
            threading.Event().wait(0.01)

    def is_assigned(self, event: ConsumedEvent) -> bool:
        return True

    def dead_letter(
        self, event: ConsumedEvent, error: BaseException, topic: str | None = None
    ) -> None:
        self.dead.append((event, error))


def test_poison_is_dead_lettered_and_marked_failed_the_rest_runs_off_thread() -> None:
    rows, runner = FakeRows(), FakeRunner()
    policy = ImageWorkerPolicy(rows, ImageWorkerSettings())
    handled: list[tuple[list[int], str]] = []

    def handler(events: list[ConsumedEvent]) -> None:
        ids = [job.product_id for e in events if (job := product_job(e))]
        handled.append((ids, threading.current_thread().name))

    poison = consumed(created({"product_id": "x"}), b"12")
    good = consumed(created({"product_id": 13}), b"13")
    try:
        assert policy.handle([poison, good], handler, runner) is Outcome.COMMIT
    finally:
        policy.close()
    assert [e for e, _ in runner.dead] == [poison]
    assert rows.failed == [(12, "poison_event")]
    assert len(handled) == 1 and handled[0][0] == [13]
    assert handled[0][1].startswith("products")  # not the consumer thread


def test_a_product_that_keeps_failing_is_given_up_and_marked_failed() -> None:
    rows, runner = FakeRows(), FakeRunner()
    policy = ImageWorkerPolicy(rows, ImageWorkerSettings(max_attempts=2))
    calls = 0

    def handler(events: list[ConsumedEvent]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug")

    event = consumed(created({"product_id": 21}), b"21")
    try:
        assert policy.handle([event], handler, runner) is Outcome.COMMIT
    finally:
        policy.close()
    assert calls == 2
    assert [type(e).__name__ for _, e in runner.dead] == ["RuntimeError"]
    assert rows.failed == [(21, "processing_failed")]
