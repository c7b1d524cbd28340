"""``/admin/jobs`` (admin): the queue at a glance, and bulk replay of the dead-letter queue.

Guarantee: the overview answers from PostgreSQL even when Kafka is down (its lag part is
then null, after at most the lag reader's timeout); a replay moves each dead job back to
``queued`` once, with its event, however many replays race.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint

from switchyard.jobs import store
from switchyard.jobs.records import STATUSES
from switchyard_api.http.contract import Out, endpoint
from switchyard_api.jobs.bodies import Replay
from switchyard_api.jobs.context import UNAVAILABLE, answer_503_when_postgres_is_down, jobs_context
from switchyard_api.jobs.schemas import JobsOverview, Replayed, TopicLag

jobs_admin = Blueprint("jobs_admin", __name__)
answer_503_when_postgres_is_down(jobs_admin)
TAGS = ("jobs",)


@endpoint(
    jobs_admin,
    "GET",
    "/admin/jobs",
    summary="Counts by type and status, dead-letter depth, oldest queued age, consumer lag",
    description="`counts` names every status for each type that has jobs. `consumer_lag` is "
    "the job-worker groups' lag on the jobs topic (`job-worker`) and on each retry tier "
    "(`job-worker-retry-5s`, ...), read at most every "
    "2 s; null when Kafka did not answer within 2 s.",
    tags=TAGS,
    admin=True,
    responses={200: Out("the overview", JobsOverview)},
    problems={503: UNAVAILABLE},
)
def jobs_overview() -> JobsOverview:
    context = jobs_context()
    stats = store.job_stats(context.engine)
    lag = context.lag.read()
    return JobsOverview(
        counts={
            job_type: {status: by_status.get(status, 0) for status in STATUSES}
            for job_type, by_status in sorted(stats.counts.items())
        },
        dead_letter_depth=stats.dead,
        dead_letter_topic=context.topics.dead,
        parked=stats.parked,
        oldest_queued_age_seconds=stats.oldest_queued_age_seconds,
        consumer_lag=None if lag is None else [TopicLag(**asdict(item)) for item in lag],
    )


@endpoint(
    jobs_admin,
    "POST",
    "/admin/jobs/replay",
    summary="Run dead jobs again (optionally of one type), oldest first",
    description="Each replayed job is queued with a fresh attempt budget, as "
    "`POST /jobs/{job_id}/retry` does. Send `{}` to replay up to 1000 of any type.",
    tags=TAGS,
    admin=True,
    body=Replay,
    responses={200: Out("the jobs replayed", Replayed)},
    problems={503: UNAVAILABLE},
)
def replay_dead_jobs(body: Replay) -> Replayed:
    context = jobs_context()
    ids = store.replay_dead(context.engine, body.type, body.limit, context.topics)
    return Replayed(replayed=len(ids), ids=ids)
