"""Every topic of the platform, declared once.

The README's topic table is written from this catalogue. Names get the configured
``KAFKA__TOPIC_PREFIX`` in front, so several stacks (or test runs) can share one cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from switchyard.backoff import backoff_delay
from switchyard.config import Settings
from switchyard.kafka.client_config import common_config
from switchyard.logging import get_logger

if TYPE_CHECKING:
    from switchyard.jobs.records import JobTopics

log = get_logger(__name__)

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    event_types: tuple[str, ...]
    producers: str
    consumers: str
    has_dlq: bool = True


USERS = Topic(
    "users",
    "user id",
    ("user.created", "user.updated", "user.deleted"),
    "api (outbox relay)",
    "(subscribers; `switchyard topics tail users`)",
    False,
)
LOGS = Topic("logs", "service name", ("log.received",), "api", "batcher")
HEALTH = Topic(
    "health",
    "service name",
    ("health.reported", "target.checked"),
    "api, health-checker",
    "batcher",
)
TARGETS = Topic(
    "targets", "target id", ("target.down", "target.up"), "health-checker", "(subscribers)", False
)
PRODUCTS = Topic(
    "products", "product id", ("product.created",), "api (outbox relay)", "image-worker"
)
COUPONS = Topic(
    "coupons",
    "coupon name",
    ("coupon.created", "coupon.claimed"),
    "api (outbox relay)",
    "(subscribers)",
    False,
)
JOBS = Topic(
    "jobs",
    "job id",
    ("job.enqueued",),
    "api, job-worker (outbox relay)",
    "job-worker",
)
# A failed attempt waits in the shortest tier at least as long as its backoff.
JOB_RETRY_TIERS: tuple[tuple[str, float], ...] = (
    ("jobs.retry-5s", 5.0),
    ("jobs.retry-1m", 60.0),
    ("jobs.retry-10m", 600.0),
)
JOBS_RETRY = tuple(
    Topic(name, "job id", ("job.retry",), "job-worker (outbox relay)", "job-worker", False)
    for name, _ in JOB_RETRY_TIERS
)

CATALOGUE: tuple[Topic, ...] = (
    USERS,
    LOGS,
    HEALTH,
    TARGETS,
    PRODUCTS,
    COUPONS,
    JOBS,
    *JOBS_RETRY,
)


def topic_name(settings: Settings, topic: Topic | str) -> str:
    """The topic's name on the cluster, with the configured prefix."""
    base = topic.name if isinstance(topic, Topic) else topic
    return f"{settings.kafka.topic_prefix}{base}"


def dlq_name(topic: str) -> str:
    """The dead-letter topic of a (prefixed) topic name."""
    return f"{topic}{DLQ_SUFFIX}"


def all_topic_names(settings: Settings) -> list[str]:
    names = []
    for topic in CATALOGUE:
        names.append(topic_name(settings, topic))
        if topic.has_dlq:
            names.append(dlq_name(topic_name(settings, topic)))
    return names


def ensure_topics_patiently(
    settings: Settings, should_stop: Callable[[], bool], timeout: float = 120.0
) -> bool:
    """:func:`ensure_topics`, retried with backoff while Kafka is still starting.

    Returns False if Kafka did not answer within ``timeout`` (or we were asked to stop);
    the service then starts anyway and reports Kafka in /readyz.
    """
    deadline = time.monotonic() + timeout
    attempt = 0
    while not should_stop():
        try:
            ensure_topics(settings, timeout=10.0)
            return True
        except Exception as exc:
            attempt += 1
            if time.monotonic() >= deadline:
                log.error("could not create topics; continuing without", error=str(exc)[:300])
                return False
            delay = backoff_delay(attempt, base=0.5, cap=5.0)
            log.warning(
                "Kafka not ready for topic creation; retrying",
                error=str(exc)[:300],
                retry_in=round(delay, 2),
            )
            time.sleep(delay)
    return False


def ensure_topics(
    settings: Settings, names: Iterable[str] | None = None, timeout: float = 30.0
) -> None:
    """Create the topics that are missing; existing ones are left as they are.

    New topics get ``min.insync.replicas`` (:attr:`KafkaSettings.topic_min_insync_replicas`),
    so with acks=all a write is confirmed only once that many replicas have it."""
    wanted = sorted(set(names if names is not None else all_topic_names(settings)))
    admin = AdminClient(common_config(settings, "topics"))
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=settings.kafka.partitions,
                replication_factor=settings.kafka.replication_factor,
                config={"min.insync.replicas": str(settings.kafka.topic_min_insync_replicas)},
            )
            for name in missing
        ],
        operation_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            log.info("topic created", topic=name, partitions=settings.kafka.partitions)
        except KafkaException as exc:
            # Another process created it between our listing and our request.
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def job_topics(settings: Settings) -> JobTopics:
    """The prefixed names the job state changes publish to."""
    from switchyard.jobs.records import JobTopics

    jobs = topic_name(settings, JOBS)
    return JobTopics(
        jobs=jobs,
        retry_tiers=tuple((topic_name(settings, name), d) for name, d in JOB_RETRY_TIERS),
        dead=dlq_name(jobs),
    )
