"""What the jobs endpoints share: the engine, the topics, the lag reader.

PostgreSQL down is every jobs endpoint's own 503 (:mod:`switchyard_api.http.database`); a
503 after a write may hide a commit, which is why a client retries ``POST /jobs`` with
its ``idempotency_key``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from switchyard.config import Settings
from switchyard.jobs.records import JobTopics
from switchyard.kafka.lag import LagReader
from switchyard.kafka.topics import job_topics
from switchyard_api.http.database import UNAVAILABLE, answer_503_when_postgres_is_down
from switchyard_api.services import ApiServices

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


__all__ = ["UNAVAILABLE", "JobsContext", "answer_503_when_postgres_is_down", "jobs_context"]
