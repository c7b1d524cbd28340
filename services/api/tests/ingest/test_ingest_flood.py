"""Flooding a real gunicorn API with a tiny ingest buffer: 429 with Retry-After, and
nothing of a refused request reaches Kafka."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from switchyard.config import Settings
from switchyard.kafka.tail import iter_records
from switchyard.kafka.topics import LOGS, topic_name
from switchyard_devtools.bench.stack import api_server

pytestmark = pytest.mark.integration
PER_REQUEST = 10


@pytest.fixture(scope="module")
def tiny_api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server(
        settings,
        tmp_path_factory.mktemp("flood"),
        API__WORKERS="1",
        API__THREADS="32",
        INGEST__MAX_IN_FLIGHT_EVENTS="20",
        INGEST__ADMISSION_WAIT_SECONDS="0",
        INGEST__RETRY_AFTER_SECONDS="2",
    ) as url:
        yield url


def _post(url: str, body: bytes) -> tuple[int, str | None]:
    request = urllib.request.Request(
        f"{url}/logs", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


def test_a_flood_gets_429_and_refused_requests_publish_nothing(
    tiny_api: str, settings: Settings
) -> None:
    service_name = f"flood-{uuid.uuid4().hex[:8]}"
    bodies = [
        orjson.dumps(
            [{"service": service_name, "message": f"r{r} e{e}"} for e in range(PER_REQUEST)]
        )
        for r in range(600)
    ]
    with ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(lambda body: _post(tiny_api, body), bodies))
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {202, 429}, statuses
    assert statuses[429] > 0 and statuses[202] > 0, statuses
    assert {after for status, after in answers if status == 429} == {"2"}

    published = Counter(
        record.event.data["message"].split()[0]
        for record in iter_records(settings, topic_name(settings, LOGS), idle_timeout=3.0)
        if record.event.data["service"] == service_name
    )
    # Whole requests only: every accepted request has all its events, refused ones none.
    assert set(published.values()) == {PER_REQUEST}
    assert len(published) == statuses[202]


def test_a_request_larger_than_the_whole_buffer_is_a_413(tiny_api: str) -> None:
    body = orjson.dumps([{"service": "big", "message": "m"}] * 21)
    assert _post(tiny_api, body)[0] == 413
