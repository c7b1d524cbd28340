"""``/admin/jobs`` and the replay of dead jobs over real PostgreSQL and Kafka; the lag
reader against real consumer-group offsets; 503 and null lag when a server is gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, Producer, TopicPartition
from flask import Flask
from flask.testing import FlaskClient

from switchyard.config import Settings
from switchyard.jobs.records import STATUSES, JobTopics
from switchyard.kafka.lag import LagReader, TopicLag
from switchyard.kafka.topics import ensure_topics

from .conftest import ADMIN, enqueue, kill

pytestmark = pytest.mark.integration


def _overview(client: FlaskClient) -> dict[str, object]:
    response = client.get("/admin/jobs", headers=ADMIN)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def test_the_overview_counts_every_type_and_status(
    client: FlaskClient, engine: sa.Engine, topics: JobTopics, settings: Settings
) -> None:
    before = _overview(client)
    job = enqueue(client, "fail", payload={"times": 3}, max_attempts=1)
    kill(engine, topics, job["id"])
    enqueue(client, "logs.retention", payload={"days": 9})
    after = _overview(client)

    counts = after["counts"]
    assert isinstance(counts, dict)
    assert all(list(by_status) == list(STATUSES) for by_status in counts.values())
    dead_before = before["counts"].get("fail", {}).get("dead", 0)  # type: ignore[attr-defined]
    assert counts["fail"]["dead"] == dead_before + 1
    assert after["dead_letter_depth"] == before["dead_letter_depth"] + 1  # type: ignore[operator]
    assert after["dead_letter_topic"] == topics.dead
    assert isinstance(after["oldest_queued_age_seconds"], float)
    assert after["parked"] == before["parked"]  # other tests may leave parked jobs

    prefix = settings.kafka.topic_prefix
    lag = after["consumer_lag"]
    assert isinstance(lag, list)
    assert [(item["group"], item["topic"]) for item in lag] == [
        (f"{prefix}job-worker", topics.jobs),
        *(
            (f"{prefix}job-worker-{tier.rsplit('.', 1)[-1]}", tier)
            for tier, _ in topics.retry_tiers
        ),
    ]
    assert all(item["partitions"] == settings.kafka.partitions for item in lag)


def test_the_overview_and_replay_need_the_admin_token(client: FlaskClient) -> None:
    assert client.get("/admin/jobs").status_code == 401
    assert client.post("/admin/jobs/replay", json={}).status_code == 401


def test_replay_brings_dead_jobs_back_oldest_first(
    client: FlaskClient, engine: sa.Engine, topics: JobTopics
) -> None:
    dead = []
    for _ in range(3):
        job = enqueue(client, "fail", payload={"times": 5}, max_attempts=1)
        kill(engine, topics, job["id"])
        dead.append(job["id"])

    one = client.post("/admin/jobs/replay", json={"type": "fail", "limit": 1}, headers=ADMIN)
    assert one.status_code == 200
    assert one.get_json()["replayed"] == len(one.get_json()["ids"]) == 1

    rest = client.post("/admin/jobs/replay", json={"type": "fail"}, headers=ADMIN).get_json()
    replayed = one.get_json()["ids"] + rest["ids"]
    assert [i for i in replayed if i in dead] == dead  # oldest first, each once
    for job_id in dead:
        assert client.get(f"/jobs/{job_id}").get_json()["status"] == "queued"

    none = client.post("/admin/jobs/replay", json={"type": "fail"}, headers=ADMIN).get_json()
    assert none == {"replayed": 0, "ids": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [({"limit": 0}, "limit"), ({"limit": 10_001}, "limit"), ({"type": None}, "type")],
)
def test_bad_replay_bodies_are_400s(client: FlaskClient, body: object, field: str) -> None:
    response = client.post("/admin/jobs/replay", json=body, headers=ADMIN)
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


def _fill(settings: Settings, name: str) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for partition, count in ((0, 5), (1, 2)):
        for _ in range(count):
            producer.produce(name, b"x", partition=partition)
    assert producer.flush(30) == 0


def _commit(settings: Settings, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def test_lag_is_what_the_group_has_not_committed(settings: Settings) -> None:
    name = f"{settings.kafka.topic_prefix}lag-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [name])
    _fill(settings, name)
    group, idle = f"lag-{uuid.uuid4().hex[:8]}", f"idle-{uuid.uuid4().hex[:8]}"
    _commit(settings, group, [TopicPartition(name, 0, 3)])
    missing = f"{name}-missing"
    reader = LagReader(settings, [(group, (name, missing)), (idle, (name,))], timeout=10)
    assert reader.read() == [
        TopicLag(group, name, 2 + 2, settings.kafka.partitions),  # partition 1: never committed
        TopicLag(group, missing, 0, 0),
        TopicLag(idle, name, 7, settings.kafka.partitions),
    ]


def _app(settings: Settings, **changes: object) -> Iterator[FlaskClient]:
    from switchyard_api.app import create_app

    app: Flask = create_app(settings.model_copy(update=changes))
    yield app.test_client()
    app.extensions["switchyard"].close()


@pytest.fixture
def without_kafka(settings: Settings) -> Iterator[FlaskClient]:
    yield from _app(settings, kafka_bootstrap_servers="127.0.0.1:1")


@pytest.fixture
def without_postgres(settings: Settings) -> Iterator[FlaskClient]:
    yield from _app(settings, database_url="postgresql://postgres@127.0.0.1:1/switchyard")


def test_without_kafka_the_overview_answers_with_null_lag(without_kafka: FlaskClient) -> None:
    overview = _overview(without_kafka)
    assert overview["consumer_lag"] is None
    assert isinstance(overview["counts"], dict)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/jobs", {"type": "echo", "payload": {}}),
        ("GET", f"/jobs/{uuid.uuid4()}", None),
        ("GET", "/jobs", None),
        ("POST", f"/jobs/{uuid.uuid4()}/cancel", None),
        ("GET", "/admin/jobs", None),
        ("GET", "/schedules", None),
        ("POST", "/schedules", {"name": "s", "cron": "* * * * *", "type": "echo", "payload": {}}),
    ],
)
def test_without_postgres_each_endpoint_answers_503(
    without_postgres: FlaskClient, method: str, path: str, body: object
) -> None:
    response = without_postgres.open(path, method=method, json=body, headers=ADMIN)
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
