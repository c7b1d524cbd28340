"""What the jobs endpoints share: the engine, the topics, the lag reader, the 503.

Guarantee: PostgreSQL not answering is a 503 problem with ``Retry-After`` from every
jobs endpoint, never a 500; a 503 after a write may hide a commit, which is why a client
retries ``POST /jobs`` with its ``idempotency_key``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import Blueprint, Response, current_app

from switchyard.config import Settings
from switchyard.jobs.records import JobTopics
from switchyard.kafka.lag import LagReader
from switchyard.kafka.topics import job_topics
from switchyard.logging import get_logger
from switchyard_api.http.problems import Problem
from switchyard_api.services import ApiServices

log = get_logger(__name__)
UNAVAILABLE = "PostgreSQL did not answer; retry (see Retry-After)"
TAGS = ("jobs",)


@dataclass(frozen=True)
class JobsContext:
    settings: Settings
    engine: sa.Engine
    topics: JobTopics
    lag: LagReader


def _build(services: ApiServices) -> JobsContext:
    settings = services.settings
    topics = job_topics(settings)
    prefix = settings.kafka.topic_prefix
    # The job-worker's groups: one on the main topic, one per retry tier (named after it).
    groups = (
        (f"{prefix}job-worker", (topics.jobs,)),
        *(
            (f"{prefix}job-worker-{topic.rsplit('.', 1)[-1]}", (topic,))
            for topic, _ in topics.retry_tiers
        ),
    )
    return JobsContext(settings, services.engine, topics, LagReader(settings, groups))


def jobs_context() -> JobsContext:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.part("jobs", _build)


def answer_503_when_postgres_is_down(blueprint: Blueprint) -> None:
    @blueprint.errorhandler(sa.exc.OperationalError)
    @blueprint.errorhandler(sa.exc.InterfaceError)
    @blueprint.errorhandler(sa.exc.TimeoutError)
    def _unavailable(error: Exception) -> Response:
        log.error("jobs request failed in PostgreSQL", error=str(error)[:300])
        return Problem(
            503,
            "PostgreSQL did not answer; retry the request.",
            slug="database-unavailable",
            headers={"Retry-After": "1"},
        ).to_response()
