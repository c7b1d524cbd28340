"""``/jobs`` over real PostgreSQL (Flask's client): enqueue, read, list, cancel, retry."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from switchyard.config import Settings
from switchyard.events import CloudEvent
from switchyard.jobs.records import JobTopics

from .conftest import ADMIN, claim, enqueue, finish, kill

pytestmark = pytest.mark.integration
SPEC_FIELDS = {
    "id",
    "type",
    "payload",
    "status",
    "attempts",
    "max_attempts",
    "last_error",
    "result",
    "run_at",
    "created_at",
    "started_at",
    "finished_at",
}


def _outbox(engine: sa.Engine, job_id: str) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text("SELECT topic, payload, headers FROM outbox WHERE key = :k ORDER BY id"),
                {"k": job_id},
            )
        )


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_enqueue_now_is_queued_with_its_event(
    client: FlaskClient, engine: sa.Engine, topics: JobTopics, settings: Settings
) -> None:
    response = client.post(
        "/jobs",
        json={"type": "sleep", "payload": {"seconds": 1}},
        headers={"X-Request-ID": "jobs-req-1"},
    )
    assert response.status_code == 202, response.data
    ref = response.get_json()
    assert ref["status"] == "queued" and set(ref) == {"id", "status"}
    assert response.headers["Location"] == f"/jobs/{ref['id']}"

    job = client.get(f"/jobs/{ref['id']}").get_json()
    assert set(job) >= SPEC_FIELDS
    assert job["payload"] == {"seconds": 1}  # as sent, not as the model would rewrite it
    assert (job["attempts"], job["max_attempts"]) == (0, settings.jobs.default_max_attempts)
    assert job["timeout_seconds"] == settings.jobs.default_timeout_seconds
    assert job["last_error"] is job["result"] is job["started_at"] is job["finished_at"] is None

    [(topic, payload, headers)] = _outbox(engine, ref["id"])
    assert topic == topics.jobs
    event = CloudEvent.from_json(payload if isinstance(payload, bytes | str) else bytes(payload))
    assert event.type == "job.enqueued" and event.data["id"] == ref["id"]
    assert headers["x-request-id"] == "jobs-req-1"


def test_enqueue_later_is_scheduled_without_an_event_yet(
    client: FlaskClient, engine: sa.Engine
) -> None:
    delayed = enqueue(client, delay_seconds=120, max_attempts=2, timeout_seconds=7)
    assert delayed["status"] == "scheduled"
    assert (delayed["max_attempts"], delayed["timeout_seconds"]) == (2, 7)
    wait = _at(delayed["run_at"]) - _at(delayed["created_at"])
    assert timedelta(seconds=119) < wait < timedelta(seconds=125)
    assert _outbox(engine, delayed["id"]) == []

    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    local = at.astimezone(timezone(timedelta(hours=-5)))
    timed = enqueue(client, run_at=local.isoformat())
    assert timed["status"] == "scheduled"
    assert _at(timed["run_at"]) == at  # the offset is honoured

    past = enqueue(client, run_at="2020-01-01T00:00:00Z")
    assert past["status"] == "queued"
    assert enqueue(client, delay_seconds=0)["status"] == "queued"


def test_run_at_and_delay_seconds_together_name_both(client: FlaskClient) -> None:
    response = client.post(
        "/jobs",
        json={
            "type": "echo",
            "payload": {},
            "run_at": "2030-01-01T00:00:00Z",
            "delay_seconds": 5,
        },
    )
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == ["run_at", "delay_seconds"]


def test_unknown_type_is_a_400_listing_the_known_types(
    client: FlaskClient, engine: sa.Engine
) -> None:
    response = client.post("/jobs", json={"type": "email.send", "payload": {}})
    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "type"
    for known in ("echo", "sleep", "fail", "http.request", "logs.retention"):
        assert known in error["message"]
    with engine.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT count(*) FROM jobs WHERE type = 'email.send'")
        ).scalar_one()
    assert stored == 0


@pytest.mark.parametrize(
    ("job_type", "payload", "fields"),
    [
        ("sleep", {"seconds": "ten"}, ["payload.seconds"]),
        ("sleep", {"seconds": 90_000}, ["payload.seconds"]),
        ("fail", {}, ["payload.times"]),
        (
            "http.request",
            {"url": "not a url", "timeout_seconds": 0},
            ["payload.url", "payload.timeout_seconds"],
        ),
        ("logs.retention", {"days": 7, "services": "api"}, ["payload.services"]),
        ("echo", {"text": "nul\x00"}, ["payload.text"]),
    ],
)
def test_bad_payloads_name_each_field_by_path(
    client: FlaskClient, job_type: str, payload: dict[str, Any], fields: list[str]
) -> None:
    response = client.post("/jobs", json={"type": job_type, "payload": payload})
    assert response.status_code == 400, response.data
    assert [e["field"] for e in response.get_json()["errors"]] == fields


def test_a_payload_must_be_an_object(client: FlaskClient) -> None:
    for payload in ([1, 2], "x", None):
        response = client.post("/jobs", json={"type": "echo", "payload": payload})
        assert response.status_code == 400
        assert [e["field"] for e in response.get_json()["errors"]] == ["payload"]


def test_racing_requests_with_one_idempotency_key_make_one_job(
    app: Flask, engine: sa.Engine
) -> None:
    key = f"idem-{uuid.uuid4()}"
    body = {"type": "echo", "payload": {"k": key}, "idempotency_key": key}
    answers: list[tuple[int, dict[str, Any]]] = []
    start = threading.Barrier(8)

    def post() -> None:
        client = app.test_client()
        start.wait()
        response = client.post("/jobs", json=body)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200] * 7 + [202]
    assert len({answer["id"] for _, answer in answers}) == 1
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT count(*) FROM jobs WHERE idempotency_key = :k"), {"k": key}
        ).scalar_one()
    assert rows == 1


def test_a_repeated_key_returns_the_existing_job_whatever_the_body(client: FlaskClient) -> None:
    key = f"idem-{uuid.uuid4()}"
    first = client.post("/jobs", json={"type": "echo", "payload": {}, "idempotency_key": key})
    again = client.post(
        "/jobs", json={"type": "sleep", "payload": {"seconds": 1}, "idempotency_key": key}
    )
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert client.get(first.headers["Location"]).get_json()["type"] == "echo"


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/not-a-uuid",
        f"/jobs/{uuid.uuid4()}",
        f"/jobs/{uuid.uuid4()}/attempts",
        "/jobs/12345678-1234-1234-1234-1234567890123",
    ],
)
def test_unknown_jobs_are_404_problems(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def test_every_attempt_is_kept(client: FlaskClient, engine: sa.Engine, topics: JobTopics) -> None:
    job = enqueue(client, "fail", payload={"times": 5}, max_attempts=2)
    kill(engine, topics, job["id"], error="it failed")
    dead = client.get(f"/jobs/{job['id']}").get_json()
    assert (dead["status"], dead["attempts"], dead["last_error"]) == ("dead", 2, "it failed")
    attempts = client.get(f"/jobs/{job['id']}/attempts").get_json()["items"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert {(a["worker"], a["outcome"], a["error"]) for a in attempts} == {
        ("test-worker", "failed", "it failed")
    }
    fresh = enqueue(client)
    assert client.get(f"/jobs/{fresh['id']}/attempts").get_json() == {"items": []}


def test_list_filters_and_pages_newest_first(client: FlaskClient) -> None:
    mine = [enqueue(client, "sleep", payload={"seconds": i})["id"] for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while not set(mine) <= set(seen):
        query = "/jobs?type=sleep&status=queued&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query).get_json()
        assert len(page["items"]) <= 2
        assert {(j["type"], j["status"]) for j in page["items"]} <= {("sleep", "queued")}
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        assert cursor is not None or set(mine) <= set(seen)
    assert len(seen) == len(set(seen))  # no job on two pages
    assert [i for i in seen if i in mine] == mine[::-1]


@pytest.mark.parametrize(
    "query", ["status=waiting", "limit=0", "limit=1001", "cursor=abc", "cursor=-1", "type="]
)
def test_bad_list_queries_are_400s(client: FlaskClient, query: str) -> None:
    response = client.get(f"/jobs?{query}")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == query.split("=")[0]


def test_cancel_then_retry(client: FlaskClient, engine: sa.Engine) -> None:
    job = enqueue(client, delay_seconds=600)
    path = f"/jobs/{job['id']}"
    assert client.post(f"{path}/cancel").status_code == 401
    cancelled = client.post(f"{path}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "cancelled"
    assert cancelled.get_json()["finished_at"] is not None

    again = client.post(f"{path}/cancel", headers=ADMIN)
    assert again.status_code == 409
    assert again.content_type == "application/problem+json"
    assert "cancelled" in again.get_json()["detail"]

    retried = client.post(f"{path}/retry", headers=ADMIN)
    assert retried.status_code == 200
    assert retried.get_json()["status"] == "queued"
    conflict = client.post(f"{path}/retry", headers=ADMIN)
    assert conflict.status_code == 409 and "queued" in conflict.get_json()["detail"]


def test_running_and_finished_jobs_cannot_be_cancelled(
    client: FlaskClient, engine: sa.Engine, topics: JobTopics
) -> None:
    job = enqueue(client)
    running = claim(engine, job["id"])
    assert client.post(f"/jobs/{job['id']}/cancel", headers=ADMIN).status_code == 409
    assert client.post(f"/jobs/{job['id']}/retry", headers=ADMIN).status_code == 409
    finish(engine, topics, running, "succeeded", result={"n": 1})
    done = client.get(f"/jobs/{job['id']}").get_json()
    assert (done["status"], done["result"], done["attempts"]) == ("succeeded", {"n": 1}, 1)
    for action in ("cancel", "retry"):
        response = client.post(f"/jobs/{job['id']}/{action}", headers=ADMIN)
        assert response.status_code == 409, action


def test_a_dead_job_runs_again_after_retry(
    client: FlaskClient, engine: sa.Engine, topics: JobTopics
) -> None:
    job = enqueue(client, "fail", payload={"times": 9}, max_attempts=1)
    kill(engine, topics, job["id"])
    response = client.post(f"/jobs/{job['id']}/retry", headers=ADMIN)
    assert response.status_code == 200
    retried = response.get_json()
    assert retried["status"] == "queued"
    assert retried["max_attempts"] - retried["attempts"] == 1  # a fresh budget
    assert claim(engine, job["id"]).attempt == 2


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_actions_on_unknown_jobs_are_404(client: FlaskClient, action: str) -> None:
    assert client.post(f"/jobs/{uuid.uuid4()}/{action}", headers=ADMIN).status_code == 404
    assert client.post(f"/jobs/nope/{action}", headers=ADMIN).status_code == 404
