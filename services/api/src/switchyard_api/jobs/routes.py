"""``/jobs``: enqueue (row and event in one transaction), read, list, attempts, retry, cancel.

Guarantee: a job is stored only with a known type and a payload its type's model takes;
a repeated ``idempotency_key`` never stores a second job, however many requests race
(the store's unique key decides: one 202, the others 200 with the same job).
"""

from __future__ import annotations

from flask import Blueprint

from switchyard.jobs import store
from switchyard.jobs.records import Job as JobRecord
from switchyard_api.http.contract import Body, Out, Reply, endpoint
from switchyard_api.http.pagination import cut_page
from switchyard_api.http.problems import Problem
from switchyard_api.http.request_context import current_request_id
from switchyard_api.http.validation import read_json
from switchyard_api.jobs.bodies import JobCreate, JobCreateBody, parse_body
from switchyard_api.jobs.context import (
    TAGS,
    UNAVAILABLE,
    answer_503_when_postgres_is_down,
    jobs_context,
)
from switchyard_api.jobs.schemas import AttemptList, Job, JobId, JobListQuery, JobPage, JobRef

jobs = Blueprint("jobs", __name__)
answer_503_when_postgres_is_down(jobs)
NO_JOB = "no job with this id (or not a UUID)"
_BY_ID = {"operationId": "get_job", "parameters": {"job_id": "$response.body#/id"}}
# Stateful tests (and readers) follow these from an enqueued job to what can be done to it.
_LINKS = {
    "GetJob": _BY_ID,
    "GetJobAttempts": {**_BY_ID, "operationId": "get_job_attempts"},
    "CancelJob": {**_BY_ID, "operationId": "cancel_job"},
    "RetryJob": {**_BY_ID, "operationId": "retry_job"},
}
_LOCATION = {"Location": {"schema": {"type": "string"}}}


def as_job(job: JobRecord) -> Job:
    return Job.model_validate(job, from_attributes=True)


def _not_found(job_id: str) -> Problem:
    return Problem(404, f"There is no job with id {job_id}.", slug="not-found")


def _conflict(exc: store.JobStateConflict) -> Problem:
    return Problem(409, str(exc) + ".", title="Job State Conflict", slug="job-state-conflict")


@endpoint(
    jobs,
    "POST",
    "/jobs",
    summary="Enqueue a job; its job.enqueued event commits with it (outbox)",
    description="`type` must be a known job type and `payload` must match its model (else "
    "a 400 naming `type`, or each bad `payload.<field>`). A job with `run_at` or "
    "`delay_seconds` in the future is `scheduled`, else `queued`. A repeated "
    "`idempotency_key` stores nothing and answers 200 with the existing job, whatever "
    "the rest of the body says: after a 503, retry with the same key.",
    tags=TAGS,
    body=Body(JobCreateBody, parse=False),
    responses={
        202: Out("accepted; Location names the job", JobRef, headers=_LOCATION, links=_LINKS),
        200: Out(
            "a job with this idempotency_key exists: that job",
            JobRef,
            headers=_LOCATION,
            links=_LINKS,
        ),
    },
    problems={503: UNAVAILABLE},
)
def create_job() -> Reply:
    body = parse_body(JobCreate, read_json())
    context = jobs_context()
    new = body.new_job(context.settings.jobs)
    job, created = store.enqueue(context.engine, new, context.topics, current_request_id())
    return Reply(
        JobRef(id=job.id, status=job.status),
        202 if created else 200,
        {"Location": f"/jobs/{job.id}"},
    )


@endpoint(
    jobs,
    "GET",
    "/jobs/<job_id>",
    summary="A job: status, attempts, last error, result",
    tags=TAGS,
    path={"job_id": JobId},
    responses={200: Out("the job", Job)},
    problems={404: NO_JOB, 503: UNAVAILABLE},
)
def get_job(job_id: str) -> Job:
    job = store.get_job(jobs_context().engine, job_id)
    if job is None:
        raise _not_found(job_id)
    return as_job(job)


@endpoint(
    jobs,
    "GET",
    "/jobs/<job_id>/attempts",
    summary="Every finished attempt of a job: worker, times, outcome, error",
    tags=TAGS,
    path={"job_id": JobId},
    responses={200: Out("the attempts, oldest first", AttemptList)},
    problems={404: NO_JOB, 503: UNAVAILABLE},
)
def get_job_attempts(job_id: str) -> AttemptList:
    engine = jobs_context().engine
    if store.get_job(engine, job_id) is None:
        raise _not_found(job_id)
    attempts = store.list_attempts(engine, job_id)
    return AttemptList.model_validate({"items": attempts}, from_attributes=True)


@endpoint(
    jobs,
    "GET",
    "/jobs",
    summary="List jobs, newest first; optionally by status and type",
    tags=TAGS,
    query=JobListQuery,
    responses={200: Out("a page", JobPage)},
    problems={503: UNAVAILABLE},
)
def list_jobs(query: JobListQuery) -> JobPage:
    rows = store.list_jobs(
        jobs_context().engine,
        status=query.status,
        job_type=query.type,
        before_seq=int(query.cursor) if query.cursor else None,
        limit=query.limit + 1,
    )
    items, cursor = cut_page(rows, query.limit, _seq_cursor)
    return JobPage(items=[as_job(item) for item in items], next_cursor=cursor)


def _seq_cursor(job: JobRecord) -> str:
    return str(job.seq)


@endpoint(
    jobs,
    "POST",
    "/jobs/<job_id>/retry",
    summary="Run a dead or cancelled job again, with a fresh attempt budget",
    tags=TAGS,
    path={"job_id": JobId},
    admin=True,
    responses={200: Out("the job, queued again", Job, links={"GetJob": _BY_ID})},
    problems={404: NO_JOB, 409: "the job is neither dead nor cancelled", 503: UNAVAILABLE},
)
def retry_job(job_id: str) -> Job:
    context = jobs_context()
    try:
        job = store.retry(context.engine, job_id, context.topics, current_request_id())
    except store.JobStateConflict as exc:
        raise _conflict(exc) from None
    if job is None:
        raise _not_found(job_id)
    return as_job(job)


@endpoint(
    jobs,
    "POST",
    "/jobs/<job_id>/cancel",
    summary="Cancel a job that is not running yet (scheduled, queued or retrying)",
    tags=TAGS,
    path={"job_id": JobId},
    admin=True,
    responses={200: Out("the job, cancelled", Job, links={"GetJob": _BY_ID})},
    problems={404: NO_JOB, 409: "the job is running or finished", 503: UNAVAILABLE},
)
def cancel_job(job_id: str) -> Job:
    try:
        job = store.cancel(jobs_context().engine, job_id)
    except store.JobStateConflict as exc:
        raise _conflict(exc) from None
    if job is None:
        raise _not_found(job_id)
    return as_job(job)
