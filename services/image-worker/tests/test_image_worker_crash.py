"""The image-worker killed mid-product, and PostgreSQL gone mid-stream: no product stuck,
no file half-written, nothing left behind."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.db.migrate import upgrade
from switchyard.db.models import User
from switchyard.kafka.producer import EventProducer
from switchyard.kafka.topics import ensure_topics
from switchyard_devtools.stack.infra import start_postgres

from .conftest import (
    ImageServer,
    ImageWorker,
    Route,
    create_products,
    picture,
    product_rows,
    publish_created,
    wait_until_finished,
)

pytestmark = pytest.mark.integration


def _isolated(settings: Settings, **update: object) -> Settings:
    """Own topics and consumer group, so no other test's worker takes our events."""
    kafka = settings.kafka.model_copy(update={"topic_prefix": f"crash-{uuid.uuid4().hex[:8]}."})
    isolated = settings.model_copy(update={"kafka": kafka, **update})
    ensure_topics(isolated)
    return isolated


@pytest.fixture
def isolated(settings: Settings) -> Settings:
    return _isolated(settings)


@pytest.fixture
def worker(isolated: Settings, tmp_path: Path) -> Iterator[ImageWorker]:
    process = ImageWorker(isolated, tmp_path)
    yield process
    process.stop_if_running()


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _stored(root: Path) -> set[str]:
    """Whole files only: a temp file being written (``.name.xxxx.tmp``) is not stored yet."""
    return {name for name in _files(root) if not name.rsplit("/", 1)[-1].startswith(".")}


def test_a_worker_killed_mid_product_leaves_it_to_the_next_one(
    worker: ImageWorker,
    isolated: Settings,
    image_server: ImageServer,
    producer: EventProducer,
    engine: sa.Engine,
    user_id: int,
) -> None:
    run = uuid.uuid4().hex[:8]
    gate = threading.Event()
    fast = [
        image_server.add(f"/kill-{run}/{n}.jpg", Route(picture((800, 600), seed=200 + n)))
        for n in range(3)
    ]
    slow = image_server.add(
        f"/kill-{run}/slow.jpg", Route(picture((800, 600), seed=299), gate=gate)
    )
    [product] = create_products(engine, user_id, [[fast[0], fast[1], slow, fast[2]]])
    worker.start().wait_until_assigned()
    publish_created(isolated, producer, [product])

    # Killed while the slow image is being served and the three others are stored.
    deadline = time.monotonic() + 30
    # (Counting temp files here once let the kill land mid-write of the third image.)
    while not (image_server.hits[f"/kill-{run}/slow.jpg"] and len(_stored(worker.media_root)) == 3):
        assert time.monotonic() < deadline, _files(worker.media_root)
        time.sleep(0.05)
    worker.kill()
    row = product_rows(engine, [product])[product]
    assert (row["status"], row["attempts"]) == ("processing", 1)
    # A temp file a crash left mid-write (an hour old): swept when the worker starts.
    leftover = worker.media_root / "ab" / "cd" / f".ab{run}.x1y2.tmp"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half an image")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))

    gate.set()
    worker.start()
    row = wait_until_finished(engine, [product], timeout=90)[product]
    assert row["status"] == "done", row
    assert row["attempts"] == 2 and row["errors"] == []
    assert len(row["paths"]) == 4 and all(row["paths"])
    # Only whole, referenced files: no temp file, nothing no product points at.
    assert _files(worker.media_root) == set(row["paths"])
    assert image_server.hits[f"/kill-{run}/slow.jpg"] == 2


def test_postgres_down_is_retried_in_place_until_it_returns(
    settings: Settings,
    image_server: ImageServer,
    producer: EventProducer,
    tmp_path: Path,
) -> None:
    server = start_postgres(tmp_path / "pg" / "data")
    port = int(server.url.rsplit(":", 1)[1].split("/", 1)[0])
    isolated = _isolated(settings, database_url=server.url.rsplit("/", 1)[0] + "/imgoutage")
    upgrade(isolated)
    engine = sa.create_engine(isolated.sqlalchemy_url, poolclass=sa.pool.NullPool)
    process = ImageWorker(isolated, tmp_path / "worker")
    process.workdir.mkdir()
    try:
        with engine.begin() as connection:
            user = connection.execute(
                sa.insert(User)
                .values(name="Outage", mobile="+1", latitude=0, longitude=0)
                .returning(User.id)
            ).scalar_one()
        url = image_server.add(f"/outage-{uuid.uuid4().hex[:8]}.jpg", Route(picture((300, 300))))
        products = create_products(engine, user, [[url]] * 5)
        process.start().wait_until_assigned()
        server.stop()
        publish_created(isolated, producer, products)
        time.sleep(4.0)  # the worker retries with PostgreSQL down
        assert process.process is not None and process.process.poll() is None
        server = start_postgres(tmp_path / "pg" / "data", port=port)
        rows = wait_until_finished(engine, products, timeout=60)
        assert {row["status"] for row in rows.values()} == {"done"}
        assert "dependency failed; retrying batch" in process.logs()
        assert process.stop() == 0
    finally:
        if process.process is not None and process.process.poll() is None:
            process.kill()
        engine.dispose()
        server.stop()
