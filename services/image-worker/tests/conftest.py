"""Real processes for the image-worker's integration tests: image servers, the worker."""

from __future__ import annotations

import io
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from PIL import Image

from switchyard.config import Settings
from switchyard.db.models import User
from switchyard.db.models.products import Product
from switchyard.events import CloudEvent, event_headers
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.tail import iter_records
from switchyard.kafka.topics import PRODUCTS, topic_name
from switchyard_devtools.testing.worker import WorkerProcess

LONGEST_SIDE = 400


# -- images --------------------------------------------------------------------------
def picture(size: tuple[int, int], fmt: str = "JPEG", mode: str = "RGB", seed: int = 0) -> bytes:
    """A noisy picture (so it does not compress to nothing) of ``size``."""
    rng = random.Random(seed)
    color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image = Image.new("RGB", size, color)
    noise = Image.effect_noise((max(1, size[0] // 2), size[1]), 20 + seed % 40).convert("RGB")
    image.paste(noise, (rng.randrange(max(1, size[0] // 2)), 0))
    converted = image.convert(mode) if mode != "RGB" else image
    if mode == "RGBA":
        converted.putalpha(128)
    out = io.BytesIO()
    converted.save(out, fmt)
    return out.getvalue()


# -- an HTTP server for images -------------------------------------------------------
@dataclass
class Route:
    body: bytes
    content_type: str = "image/jpeg"
    status: int = 200
    fail_first: int = 0  # answer ``fail_status`` this many times first
    fail_status: int = 503
    gate: threading.Event | None = None  # hold the answer until set


@dataclass
class ImageServer:
    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    state = ImageServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = state.routes.get(self.path)
            with lock:
                state.hits[self.path] += 1
                hit = state.hits[self.path]
            if route is None:
                self._answer(404, b"not found", "text/plain")
            elif hit <= route.fail_first:
                self._answer(route.fail_status, b"busy", "text/plain")
            else:
                if route.gate is not None:
                    route.gate.wait(60)
                self._answer(route.status, route.body, route.content_type)

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client went away (a killed worker)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    for route in state.routes.values():
        if route.gate is not None:
            route.gate.set()
    server.shutdown()
    server.server_close()


# -- the worker process --------------------------------------------------------------
class ImageWorker(WorkerProcess):
    """A ``switchyard-image-worker`` process the test can start, kill and stop."""

    def __init__(self, settings: Settings, workdir: Path, **env: str) -> None:
        self.media_root = workdir / "media"
        super().__init__(
            "switchyard-image-worker",
            "products",
            settings,
            workdir,
            {
                "MEDIA_ROOT": str(self.media_root),
                "FETCH__ALLOW": "127.0.0.1/32",
                "FETCH__TOTAL_TIMEOUT_SECONDS": "20",
                "IMAGE_WORKER__LONGEST_SIDE": str(LONGEST_SIDE),
                "IMAGE_WORKER__FETCH_RETRY_BASE_SECONDS": "0.1",
                "IMAGE_WORKER__FETCH_RETRY_CAP_SECONDS": "0.5",
                "IMAGE_WORKER__RETRY_CAP_SECONDS": "1",
                "IMAGE_WORKER__STATUS_REFRESH_SECONDS": "1",
                **env,
            },
        )

    def wait_until_assigned(self, partitions: int = 3, timeout: float = 60.0) -> ImageWorker:
        super().wait_until_assigned(partitions, timeout)
        return self


def log_entries(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return entries


# -- products and events -------------------------------------------------------------
@pytest.fixture(scope="session")
def user_id(engine: sa.Engine) -> int:
    with engine.begin() as connection:
        return int(
            connection.execute(
                sa.insert(User)
                .values(name="Image Tester", mobile="+10000000000", latitude=1.0, longitude=2.0)
                .returning(User.id)
            ).scalar_one()
        )


def create_products(engine: sa.Engine, user: int, images: Iterable[list[str]]) -> list[int]:
    rows = [
        {
            "user_id": user,
            "product_name": f"product {n}",
            "product_description": "a product",
            "product_images": urls,
            "product_price": Decimal("9.99"),
        }
        for n, urls in enumerate(images)
    ]
    with engine.begin() as connection:
        ids = connection.execute(
            sa.insert(Product).returning(Product.product_id, sort_by_parameter_order=True), rows
        ).scalars()
        return [int(i) for i in ids]


def publish_created(
    settings: Settings,
    producer: EventProducer,
    product_ids: Iterable[int],
    request_id: str | None = None,
) -> None:
    topic = topic_name(settings, PRODUCTS)
    records = []
    for product_id in product_ids:
        event = CloudEvent("product.created", "/tests", {"product_id": product_id})
        records.append(
            OutgoingRecord(
                topic, event.to_json(), str(product_id).encode(), event_headers(event, request_id)
            )
        )
    producer.publish(records)


def product_rows(engine: sa.Engine, product_ids: list[int]) -> dict[int, dict[str, Any]]:
    columns = (
        Product.product_id,
        Product.status,
        Product.compressed_product_images.label("paths"),
        Product.image_errors.label("errors"),
        Product.image_details.label("details"),
        Product.attempts,
        Product.processed_at,
    )
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(*columns).where(Product.product_id.in_(product_ids))
        ).mappings()
        return {row["product_id"]: {**row, "paths": list(row["paths"])} for row in rows}


def wait_until_finished(
    engine: sa.Engine, product_ids: list[int], timeout: float = 60.0
) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = product_rows(engine, product_ids)
        unfinished = [p for p, row in rows.items() if row["status"] not in ("done", "failed")]
        if not unfinished or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def dead_letters(settings: Settings, topic: str) -> list[tuple[bytes, dict[str, str]]]:
    """(value, headers) of every record in ``topic`` (read without a group)."""
    return [(r.value, r.headers) for r in iter_records(settings, topic, parse=False)]
