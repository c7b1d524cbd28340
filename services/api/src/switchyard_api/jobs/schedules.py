"""``/schedules`` (admin): cron schedules the job-worker's leader enqueues, each run once.

Guarantee: a schedule is stored only with a cron expression that fires at some time and a
type and payload ``POST /jobs`` would take, so every run it enqueues is a valid job.
"""

from __future__ import annotations

from flask import Blueprint

from switchyard.jobs import store
from switchyard_api.http.contract import Body, Out, Reply, endpoint
from switchyard_api.http.pagination import cut_page
from switchyard_api.http.problems import Problem, invalid_fields
from switchyard_api.http.validation import read_json
from switchyard_api.jobs.bodies import ScheduleCreate, ScheduleCreateBody, parse_body
from switchyard_api.jobs.context import UNAVAILABLE, answer_503_when_postgres_is_down, jobs_context
from switchyard_api.jobs.schemas import Schedule, ScheduleListQuery, ScheduleName, SchedulePage

schedules = Blueprint("schedules", __name__)
answer_503_when_postgres_is_down(schedules)
TAGS = ("schedules",)
NO_SCHEDULE = "no schedule with this name"
_BY_NAME = {"operationId": "get_schedule", "parameters": {"name": "$response.body#/name"}}
_LINKS = {"GetSchedule": _BY_NAME, "DeleteSchedule": {**_BY_NAME, "operationId": "delete_schedule"}}


def _not_found(name: str) -> Problem:
    return Problem(404, f"There is no schedule named {name!r}.", slug="not-found")


def _check_cron(cron: str) -> None:
    """A 400 on ``cron`` unless it parses and fires at some time (``0 0 30 2 *`` never does)."""
    try:
        store.validate_cron(cron)
    except ValueError as exc:
        raise invalid_fields([{"field": "cron", "message": str(exc)}]) from None


@endpoint(
    schedules,
    "POST",
    "/schedules",
    summary="Create a cron schedule; each due run is enqueued exactly once",
    description="`cron` has five fields (minute hour day-of-month month day-of-week) and is "
    "evaluated in UTC; one that never fires (`0 0 30 2 *`) is a 400 on `cron`. `type` and "
    "`payload` are checked as in `POST /jobs`. After an outage, a missed fire time runs "
    "once, not once per missed time.",
    tags=TAGS,
    admin=True,
    body=Body(ScheduleCreateBody, parse=False),
    responses={
        201: Out(
            "created; Location names it",
            Schedule,
            headers={"Location": {"schema": {"type": "string"}}},
            links=_LINKS,
        )
    },
    problems={409: "a schedule with this name exists", 503: UNAVAILABLE},
)
def create_schedule() -> Reply:
    body = parse_body(ScheduleCreate, read_json())
    _check_cron(body.cron)
    try:
        schedule = store.create_schedule(
            jobs_context().engine, body.name, body.cron, body.type, body.payload
        )
    except store.ScheduleExists as exc:
        raise Problem(409, f"{exc}.", slug="schedule-exists") from None
    return Reply(
        Schedule.model_validate(schedule, from_attributes=True),
        201,
        {"Location": f"/schedules/{schedule.name}"},
    )


@endpoint(
    schedules,
    "GET",
    "/schedules",
    summary="List schedules by name",
    tags=TAGS,
    admin=True,
    query=ScheduleListQuery,
    responses={200: Out("a page", SchedulePage)},
    problems={503: UNAVAILABLE},
)
def list_schedules(query: ScheduleListQuery) -> SchedulePage:
    rows = store.list_schedules(
        jobs_context().engine, after_name=query.cursor, limit=query.limit + 1
    )
    items, cursor = cut_page(rows, query.limit, lambda schedule: schedule.name)
    return SchedulePage.model_validate(
        {"items": items, "next_cursor": cursor}, from_attributes=True
    )


@endpoint(
    schedules,
    "GET",
    "/schedules/<name>",
    summary="A schedule and its next fire time",
    tags=TAGS,
    admin=True,
    path={"name": ScheduleName},
    responses={200: Out("the schedule", Schedule)},
    problems={404: NO_SCHEDULE, 503: UNAVAILABLE},
)
def get_schedule(name: str) -> Schedule:
    schedule = store.get_schedule(jobs_context().engine, name)
    if schedule is None:
        raise _not_found(name)
    return Schedule.model_validate(schedule, from_attributes=True)


@endpoint(
    schedules,
    "DELETE",
    "/schedules/<name>",
    summary="Delete a schedule; runs it already enqueued stay",
    tags=TAGS,
    admin=True,
    path={"name": ScheduleName},
    responses={204: Out("deleted")},
    problems={404: NO_SCHEDULE, 503: UNAVAILABLE},
)
def delete_schedule(name: str) -> Reply:
    if not store.delete_schedule(jobs_context().engine, name):
        raise _not_found(name)
    return Reply(status=204)
