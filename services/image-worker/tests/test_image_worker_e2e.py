"""The image-worker with real Kafka, PostgreSQL and image servers: products end done or
failed, never stuck, with the images in order and each source compressed once."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from switchyard.config import Settings
from switchyard.events import CloudEvent
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.topics import PRODUCTS, dlq_name, ensure_topics, topic_name
from switchyard_image_worker.products import ProductRows

from .conftest import (
    LONGEST_SIDE,
    ImageServer,
    ImageWorker,
    Route,
    create_products,
    dead_letters,
    log_entries,
    picture,
    product_rows,
    publish_created,
    wait_until_finished,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own(settings: Settings) -> Settings:
    """The session's servers and database with topics (and so a consumer group) of this
    module's own: in the shared group, members earlier tests' workers left behind kept
    this module's worker from its partitions (tansu), twice in full runs."""
    kafka = settings.kafka.model_copy(update={"topic_prefix": f"e2e-{uuid.uuid4().hex[:8]}."})
    own = settings.model_copy(update={"kafka": kafka})
    ensure_topics(own)
    return own


@pytest.fixture(scope="module")
def worker(own: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageWorker]:
    process = ImageWorker(
        own, tmp_path_factory.mktemp("image-worker"), IMAGE_WORKER__MAX_BATCH="32"
    )
    process.start().wait_until_assigned()
    yield process
    if process.process is not None and process.process.poll() is None:
        assert process.stop() == 0


def _unique() -> str:
    return uuid.uuid4().hex[:8]


def test_five_images_end_done_in_order_within_the_longest_side(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    run = _unique()
    sources = [
        ("JPEG", (1600, 1200), "RGB"),
        ("PNG", (900, 300), "RGB"),
        ("JPEG", (200, 150), "RGB"),  # already small: never upscaled
        ("PNG", (500, 1000), "RGBA"),  # transparency: stored as WebP
        ("JPEG", (300, 1200), "L"),
    ]
    urls = [
        image_server.add(
            f"/five-{run}/{n}",
            Route(picture(size, fmt, mode, seed=n), f"image/{fmt.lower()}"),
        )
        for n, (fmt, size, mode) in enumerate(sources)
    ]
    [product] = create_products(engine, user_id, [urls])
    request_id = f"req-{run}"
    publish_created(own, producer, [product], request_id=request_id)

    row = wait_until_finished(engine, [product])[product]
    assert row["status"] == "done", row
    assert row["errors"] == [] and row["attempts"] == 1 and row["processed_at"] is not None
    assert len(row["paths"]) == 5 and all(row["paths"])
    assert [d["index"] for d in row["details"]] == [0, 1, 2, 3, 4]
    for (_, (width, height), mode), path, detail in zip(
        sources, row["paths"], row["details"], strict=True
    ):
        assert not Path(path).is_absolute()  # relative to MEDIA_ROOT
        with Image.open(worker.media_root / path) as stored:
            stored.load()
            assert max(stored.size) <= LONGEST_SIDE
            scale = min(1.0, LONGEST_SIDE / max(width, height))
            assert stored.size == (round(width * scale), round(height * scale))
            assert stored.format == ("WEBP" if mode == "RGBA" else "JPEG")
            assert (detail["width"], detail["height"]) == stored.size
        assert detail["path"] == path
        assert detail["bytes_out"] == (worker.media_root / path).stat().st_size
    # Every line about the product carries its id and the request id of the POST.
    lines = [e for e in log_entries(worker.logs()) if e.get("product_id") == product]
    assert any(e["message"] == "product processed" for e in lines)
    assert lines and all(e.get("request_id") == request_id for e in lines)
    assert all(e.get("service") == "image-worker" for e in lines)


def test_a_404_and_a_non_image_fail_the_product_and_the_good_image_is_stored(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    run = _unique()
    missing = image_server.url(f"/missing-{run}.jpg")
    html = image_server.add(f"/page-{run}", Route(b"<html>hello</html>" * 20, "image/jpeg"))
    good = image_server.add(f"/good-{run}.jpg", Route(picture((640, 480), seed=7)))
    [product] = create_products(engine, user_id, [[missing, html, good]])
    publish_created(own, producer, [product])

    row = wait_until_finished(engine, [product])[product]
    assert row["status"] == "failed"
    assert [(e["index"], e["url"], e["reason"]) for e in row["errors"]] == [
        (0, missing, "http_4xx"),
        (1, html, "not_an_image"),
    ]
    assert all(e["message"] for e in row["errors"])
    assert row["paths"][:2] == [None, None] and row["paths"][2]
    assert (worker.media_root / row["paths"][2]).is_file()
    assert [d["index"] for d in row["details"]] == [2]
    assert image_server.hits[f"/missing-{run}.jpg"] == 1  # permanent: never retried


def test_a_transient_503_is_retried_and_the_product_ends_done(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    run = _unique()
    flaky = image_server.add(
        f"/flaky-{run}.png", Route(picture((300, 300), "PNG", seed=3), "image/png", fail_first=2)
    )
    busy = image_server.add(
        f"/busy-{run}.jpg", Route(picture((300, 200), seed=4), fail_first=1, fail_status=429)
    )
    [product] = create_products(engine, user_id, [[flaky, busy]])
    publish_created(own, producer, [product])

    row = wait_until_finished(engine, [product])[product]
    assert row["status"] == "done", row
    assert image_server.hits[f"/flaky-{run}.png"] == 3
    assert image_server.hits[f"/busy-{run}.jpg"] == 2


def test_an_image_that_stays_unavailable_fails_after_the_last_attempt(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    run = _unique()
    down = image_server.add(f"/down-{run}.jpg", Route(b"", fail_first=1_000))
    [product] = create_products(engine, user_id, [[down]])
    publish_created(own, producer, [product])

    row = wait_until_finished(engine, [product])[product]
    assert row["status"] == "failed"
    assert [e["reason"] for e in row["errors"]] == ["http_5xx"]
    assert image_server.hits[f"/down-{run}.jpg"] == 4  # IMAGE_WORKER__FETCH_ATTEMPTS


def test_a_poison_event_is_dead_lettered_and_its_product_marked_failed(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    run = _unique()
    url = image_server.add(f"/poison-{run}.jpg", Route(picture((100, 100), seed=5)))
    not_json, no_id, after = create_products(engine, user_id, [[url], [url, url], [url]])
    topic = topic_name(own, PRODUCTS)
    marker = f"poison-{run}".encode()
    empty = CloudEvent("product.created", "/tests", {"product": "no id"})
    producer.publish(
        [
            OutgoingRecord(topic, b"not a cloud event " + marker, str(not_json).encode()),
            OutgoingRecord(topic, empty.to_json(), str(no_id).encode(), [("marker", marker)]),
        ]
    )
    publish_created(own, producer, [after])  # the worker goes on after them

    rows = wait_until_finished(engine, [not_json, no_id, after])
    assert rows[after]["status"] == "done"
    for product, images in ((not_json, 1), (no_id, 2)):
        row = rows[product]
        assert row["status"] == "failed"
        assert [e["reason"] for e in row["errors"]] == ["poison_event"] * images
        assert row["paths"] == [None] * images
    dead = [
        (value, headers)
        for value, headers in dead_letters(own, dlq_name(topic))
        if marker in value or headers.get("marker") == marker.decode()
    ]
    assert len(dead) == 2
    assert {h["dlq-error-type"] for _, h in dead} == {"InvalidEvent"}


def test_a_burst_of_products_sharing_images_compresses_each_image_once(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    # 200 in the suite; the 1,000: IMAGE_WORKER_BURST=1000 (figures printed, -s).
    run, count = _unique(), int(os.environ.get("IMAGE_WORKER_BURST", "200"))
    shared = [
        image_server.add(f"/shared-{run}/{n}", Route(picture((1200, 900), seed=100 + n)))
        for n in range(3)
    ]
    before = worker.metrics()
    products = create_products(engine, user_id, [shared] * count)
    started = time.monotonic()
    publish_created(own, producer, products)
    rows = wait_until_finished(engine, products, timeout=max(120, count / 5))
    elapsed = time.monotonic() - started
    after = worker.metrics()

    assert len(rows) == count
    assert {row["status"] for row in rows.values()} == {"done"}
    assert len({tuple(row["paths"]) for row in rows.values()}) == 1  # same inputs, same paths
    compressed = 'images_processed_total{reason="compressed",result="ok"}'
    assert after.get(compressed, 0) - before.get(compressed, 0) == 3
    print(
        f"\n{count} products, {3 * count} images in {elapsed:.1f}s: "
        f"{3 * count / elapsed:.0f} images/s, worker peak RSS {worker.peak_rss_mib():.0f} MiB"
    )


def test_products_by_status_is_published(worker: ImageWorker) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        samples = worker.metrics()
        if samples.get('products_by_status{status="done"}', 0) > 0:
            break
        time.sleep(0.5)
    assert samples.get('products_by_status{status="done"}', 0) > 0
    assert 'products_by_status{status="pending"}' in samples


def test_a_deleted_product_is_skipped(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    run = _unique()
    url = image_server.add(f"/gone-{run}.jpg", Route(picture((100, 100), seed=9)))
    gone, kept = create_products(engine, user_id, [[url], [url]])
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM products WHERE product_id = :p"), {"p": gone})
    publish_created(own, producer, [gone, kept])
    assert wait_until_finished(engine, [kept])[kept]["status"] == "done"
    assert product_rows(engine, [gone]) == {}
    assert image_server.hits[f"/gone-{run}.jpg"] == 1


def test_a_burst_of_products_with_their_own_images(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    # 10 in the suite; IMAGE_WORKER_BURST_DISTINCT=300 for the measurement in the README.
    run, count = _unique(), int(os.environ.get("IMAGE_WORKER_BURST_DISTINCT", "10"))
    images = [
        [
            image_server.add(
                f"/own-{run}/{p}/{n}", Route(picture((1200, 900), seed=1000 + 3 * p + n))
            )
            for n in range(3)
        ]
        for p in range(count)
    ]
    products = create_products(engine, user_id, images)
    started = time.monotonic()
    publish_created(own, producer, products)
    rows = wait_until_finished(engine, products, timeout=max(120, count))
    elapsed = time.monotonic() - started
    assert {row["status"] for row in rows.values()} == {"done"}
    print(
        f"\n{count} products, {3 * count} distinct 1200x900 JPEGs in {elapsed:.1f}s: "
        f"{3 * count / elapsed:.0f} images/s, worker peak RSS {worker.peak_rss_mib():.0f} MiB"
    )


def test_a_product_whose_event_was_lost_is_requeued_once_and_ends_done(
    worker: ImageWorker,
    image_server: ImageServer,
    own: Settings,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    """No event ever reached Kafka for this product (a stopped in-memory broker, say):
    the requeue chore writes a new one to the outbox, once per period, and once relayed
    the product is processed like any other."""
    run = _unique()
    url = image_server.add(f"/lost-{run}.jpg", Route(picture((300, 200), seed=11)))
    (lost,) = create_products(engine, user_id, [[url]])
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE products SET updated_at = now() - interval '1 hour' WHERE product_id = :p"
            ),
            {"p": lost},
        )
    rows = ProductRows(engine)
    topic = topic_name(own, PRODUCTS)

    assert lost in rows.requeue_stale(600, topic)
    assert lost not in rows.requeue_stale(600, topic)  # changed just now: not again

    with engine.connect() as connection:
        (payload, headers) = connection.execute(
            sa.text("SELECT payload, headers FROM outbox WHERE topic = :t AND key = :k"),
            {"t": topic, "k": str(lost)},
        ).one()
    # What the outbox relay does with the row.
    producer.publish(
        [
            OutgoingRecord(
                topic,
                bytes(payload),
                str(lost).encode(),
                [(k, v.encode()) for k, v in headers.items()],
            )
        ]
    )
    assert wait_until_finished(engine, [lost])[lost]["status"] == "done"
