"""Responses, queries and path parameters of ``/jobs``, ``/schedules``, ``/admin/jobs``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from switchyard.jobs.records import STATUSES, AttemptOutcome, Status
from switchyard_api.http.fields import explained, text
from switchyard_api.http.pagination import PageQuery

UUID_PATTERN = explained(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "must be a UUID",
)
# Not starting with a dot: "." and ".." would be rewritten by clients in /schedules/{name}.
SCHEDULE_NAME_PATTERN = explained(
    r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$",
    "must be 1-200 letters, digits, '.', '_' or '-', not starting with '.'",
)
# The list cursor is the seq of the last job seen: any such number is a position.
SEQ_CURSOR = explained(r"^(0|[1-9][0-9]{0,17})$", "not a cursor this API issues")


JobId = Annotated[
    str,
    Field(pattern=UUID_PATTERN),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
]
ScheduleName = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=SCHEDULE_NAME_PATTERN),
]
JobTypeFilter = Annotated[str, text(1, 100)]


class JobRef(BaseModel):
    model_config = ConfigDict(title="JobRef")

    id: JobId
    status: Status


class Job(BaseModel):
    model_config = ConfigDict(title="Job")

    id: JobId
    type: str
    payload: Any = Field(description="the payload as enqueued (a JSON object)")
    status: Status = Field(
        description="scheduled → queued → running → succeeded | retrying → ... | dead; cancelled"
    )
    attempts: int = Field(description="attempts started so far")
    max_attempts: int
    timeout_seconds: int
    last_error: str | None
    result: Any = Field(description="what the handler returned; null until it succeeded")
    run_at: datetime = Field(description="when it is (or was) due; RFC 3339")
    created_at: datetime
    started_at: datetime | None = Field(description="the latest attempt's start")
    finished_at: datetime | None
    idempotency_key: str | None
    schedule_name: str | None = Field(description="the schedule that enqueued it, if any")


class JobPage(BaseModel):
    model_config = ConfigDict(title="JobPage")

    items: list[Job]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class JobListQuery(PageQuery):
    status: Literal[STATUSES] | None = Field(  # type: ignore[valid-type]
        default=None, description="only jobs in this status"
    )
    type: JobTypeFilter | None = Field(default=None, description="only jobs of this type")
    cursor: Annotated[str, Field(pattern=SEQ_CURSOR)] | None = Field(
        default=None, description="`next_cursor` of the previous page"
    )


class Attempt(BaseModel):
    model_config = ConfigDict(title="JobAttempt")

    attempt: int = Field(description="1 for the first")
    worker: str
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    error: str | None


class AttemptList(BaseModel):
    model_config = ConfigDict(title="JobAttempts")

    items: list[Attempt] = Field(description="every finished attempt, oldest first")


class Schedule(BaseModel):
    model_config = ConfigDict(title="Schedule")

    name: str
    cron: str
    type: str
    payload: Any
    next_fire_at: datetime = Field(description="the next run it will enqueue (UTC)")
    created_at: datetime


class SchedulePage(BaseModel):
    model_config = ConfigDict(title="SchedulePage")

    items: list[Schedule]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class ScheduleListQuery(PageQuery):
    cursor: ScheduleName | None = Field(
        default=None, description="`next_cursor` of the previous page (the last name seen)"
    )


class Replayed(BaseModel):
    model_config = ConfigDict(title="JobsReplayed")

    replayed: int
    ids: list[str]


class TopicLag(BaseModel):
    model_config = ConfigDict(title="TopicLag")

    group: str
    topic: str
    lag: int = Field(description="records the group has not committed yet")
    partitions: int = Field(description="0: the topic does not exist yet")


class JobsOverview(BaseModel):
    model_config = ConfigDict(title="JobsOverview")

    counts: dict[str, dict[str, int]] = Field(description="type → status → jobs")
    dead_letter_depth: int = Field(description="dead jobs (each also in the dead-letter topic)")
    dead_letter_topic: str
    parked: int = Field(description="queued jobs waiting for a slot of their type's limit")
    oldest_queued_age_seconds: float | None
    consumer_lag: list[TopicLag] | None = Field(
        description="per group and topic; null when Kafka did not answer in time"
    )
