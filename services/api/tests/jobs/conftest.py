"""Helpers for the jobs API tests: enqueue through the API, and move a job along its
state machine with the job-worker's own store functions (no worker process needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from switchyard.config import Settings
from switchyard.jobs import lifecycle
from switchyard.jobs.records import AttemptResult, ClaimedJob, JobTopics
from switchyard.kafka.topics import job_topics

ADMIN = {"Authorization": "Bearer test-admin-token-of-the-suite-only-0001"}


@pytest.fixture
def topics(settings: Settings) -> JobTopics:
    return job_topics(settings)


def enqueue(client: FlaskClient, job_type: str = "echo", **fields: Any) -> dict[str, Any]:
    """POST /jobs (202 expected); the job as GET /jobs/{id} shows it."""
    body = {"type": job_type, "payload": fields.pop("payload", {"n": 1}), **fields}
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.data
    job = client.get(f"/jobs/{response.get_json()['id']}").get_json()
    assert isinstance(job, dict)
    return job


def claim(engine: sa.Engine, job_id: str, worker: str = "test-worker") -> ClaimedJob:
    [claimed] = lifecycle.claim(engine, [job_id], worker, 30.0, {})
    return claimed


def finish(
    engine: sa.Engine, topics: JobTopics, job: ClaimedJob, outcome: str, **fields: Any
) -> None:
    now = datetime.now(UTC)
    result = AttemptResult(job=job, outcome=outcome, started_at=now, finished_at=now, **fields)  # type: ignore[arg-type]
    assert lifecycle.finish(engine, [result], topics, 0.01, 0.01, {}) == []


def kill(engine: sa.Engine, topics: JobTopics, job_id: str, error: str = "boom") -> None:
    """Fail every attempt of a job until it is dead."""
    while True:
        job = claim(engine, job_id)
        finish(engine, topics, job, "failed", error=error)
        if job.attempt >= job.max_attempts:
            return
        # A retry waits in its tier topic; the tier's consumer would requeue it.
        assert lifecycle.requeue(engine, [(job_id, job.attempt + 1)], topics) == 1
