"""Jobs end to end: real gunicorn (two workers) and the outbox relay process; the
``job.enqueued`` event really reaches the jobs topic, and an idempotency key holds across
processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from switchyard.config import Settings
from switchyard.kafka.tail import wait_for_records
from switchyard.kafka.topics import job_topics
from switchyard_devtools.bench.stack import api_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        api_server(settings, tmp_path_factory.mktemp("jobs-e2e"), relay=True) as url,
        httpx.Client(base_url=url, timeout=20) as client,
    ):
        yield client


def test_an_enqueued_job_reaches_the_jobs_topic(api: httpx.Client, settings: Settings) -> None:
    response = api.post(
        "/jobs",
        json={"type": "echo", "payload": {"hello": "kafka"}},
        headers={"X-Request-ID": "jobs-e2e-1"},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    topic = job_topics(settings).jobs
    [record] = wait_for_records(settings, topic, lambda r: r.key == job_id.encode())
    assert record.event.type == "job.enqueued"
    assert record.event.data["id"] == job_id
    assert record.event.data["type"] == "echo"
    assert record.headers["x-request-id"] == "jobs-e2e-1"


def test_one_key_one_job_across_gunicorn_workers(api: httpx.Client) -> None:
    key = f"e2e-{uuid.uuid4()}"
    body = {"type": "fail", "payload": {"times": 1}, "idempotency_key": key}
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: api.post("/jobs", json=body), range(32)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 31 + [202]
    assert len({response.json()["id"] for response in responses}) == 1
