"""Request bodies of ``POST /jobs``, ``POST /schedules`` and the replay, and their check.

The job and schedule bodies are documented as one branch per job type (``type`` fixes what
``payload`` must be, from :mod:`.payloads`); :func:`parse_body` checks a body against
exactly those rules and names every bad field, ``payload.seconds`` style.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from switchyard.config import JobSettings
from switchyard.jobs.records import NewJob
from switchyard_api.http.fields import INTEGRAL, Timestamp, explained, no_nulls, text
from switchyard_api.http.problems import invalid_fields
from switchyard_api.http.validation import errors_from
from switchyard_api.jobs import payloads
from switchyard_api.jobs.schemas import SCHEDULE_NAME_PATTERN, JobTypeFilter, ScheduleName

MAX_DELAY_SECONDS = 30 * 86_400


def _names(*names: str) -> str:
    return "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in name) for name in names)


def _cron_field(value: str) -> str:
    item = rf"(?:\*|(?:{value})(?:-(?:{value}))?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


_MONTHS = _names("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CRON_FIELDS = (
    "[0-5]?[0-9]",
    "[01]?[0-9]|2[0-3]",
    "0?[1-9]|[12][0-9]|3[01]",
    f"0?[1-9]|1[0-2]|{_MONTHS}",
    f"[0-7]|{_names('sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat')}",
)
CRON_PATTERN = explained(
    "^" + " ".join(_cron_field(value) for value in _CRON_FIELDS) + "$",
    "must be five cron fields separated by single spaces: minute (0-59), hour (0-23), day "
    "of month (1-31), month (1-12 or JAN-DEC), day of week (0-7 or SUN-SAT); each a list "
    "of *, values or ranges, each with an optional /step (1-99)",
)


class _NoNulls(BaseModel):
    """Optional fields are left out, never null (the document's schema has no null)."""

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave the field out for the default")
        return value


class JobOptions(_NoNulls):
    model_config = ConfigDict(extra="ignore", json_schema_extra=no_nulls)

    max_attempts: Annotated[int, Field(strict=True, ge=1, le=100), INTEGRAL] | None = Field(
        default=None,
        description="attempts before the job is dead (default JOBS__DEFAULT_MAX_ATTEMPTS, 5)",
    )
    run_at: Timestamp | None = Field(
        default=None,
        description="run at this time (RFC 3339 with an offset); not with delay_seconds",
    )
    delay_seconds: Annotated[float, Field(strict=True, ge=0, le=MAX_DELAY_SECONDS)] | None = Field(
        default=None, description="run this many seconds from now (up to 30 days); not with run_at"
    )
    idempotency_key: Annotated[str, text(1, 200)] | None = Field(
        default=None, description="a repeat with the same key returns the existing job with 200"
    )
    timeout_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400), INTEGRAL] | None = Field(
        default=None,
        description="an attempt running longer fails (default JOBS__DEFAULT_TIMEOUT_SECONDS, 300)",
    )


class _Typed(BaseModel):
    # The type and payload are checked against the catalogue by parse_body.
    type: Annotated[str, Field(strict=True)]
    payload: Annotated[dict[str, Any], Field(strict=True)]


class JobCreate(_Typed, JobOptions):
    model_config = ConfigDict(extra="forbid")

    def new_job(self, defaults: JobSettings) -> NewJob:
        """What the store enqueues (HTTP and gRPC alike), with the configured defaults."""
        return NewJob(
            type=self.type,
            payload=self.payload,
            max_attempts=self.max_attempts or defaults.default_max_attempts,
            timeout_seconds=self.timeout_seconds or defaults.default_timeout_seconds,
            run_at=self.run_at,
            delay_seconds=self.delay_seconds,
            idempotency_key=self.idempotency_key,
        )


class ScheduleCreate(_Typed):
    model_config = ConfigDict(extra="forbid")

    name: ScheduleName
    cron: Annotated[str, Field(max_length=200, pattern=CRON_PATTERN)]


def _body_schema(title: str, common: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"title": title, "type": "object", "oneOf": payloads.branches(common, required)}


_SCHEDULE_FIELDS = {
    "name": {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": SCHEDULE_NAME_PATTERN,
        "description": "unique; letters, digits, '.', '_', '-', not starting with '.'",
    },
    "cron": {
        "type": "string",
        "maxLength": 200,
        "pattern": CRON_PATTERN,
        "description": "five fields, evaluated in UTC: minute hour day-of-month month day-of-week",
    },
}
JOB_CREATE_SCHEMA = {
    **_body_schema("JobCreate", JobOptions.model_json_schema()["properties"], []),
    "not": {"required": ["run_at", "delay_seconds"]},
    "description": "`type` decides what `payload` must be. Give `run_at` or `delay_seconds`, "
    "not both; neither runs the job now.",
}
SCHEDULE_CREATE_SCHEMA = _body_schema("ScheduleCreate", _SCHEDULE_FIELDS, ["name", "cron"])
# What the document shows for the bodies (the views parse them with parse_body).
JobCreateBody = Annotated[dict[str, Any], WithJsonSchema(JOB_CREATE_SCHEMA)]
ScheduleCreateBody = Annotated[dict[str, Any], WithJsonSchema(SCHEDULE_CREATE_SCHEMA)]

Parsed = TypeVar("Parsed", bound=_Typed)


def parse_body(model: type[Parsed], data: Any) -> Parsed:
    """``data`` as ``model`` with its type and payload checked, or a 400 naming each field."""
    if not isinstance(data, dict):
        raise invalid_fields([{"field": "body", "message": "must be a JSON object"}])
    errors: list[dict[str, str]] = []
    parsed: Parsed | None = None
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        errors = errors_from(exc)
    named = {error["field"] for error in errors}
    if "type" in data and "type" not in named:
        type_errors = payloads.check_type(data["type"])
        errors += type_errors
        if not type_errors and "payload" in data and "payload" not in named:
            errors += payloads.check_payload(data["type"], data["payload"])
    if "run_at" in data and "delay_seconds" in data:
        message = "give run_at or delay_seconds, not both"
        errors += [{"field": name, "message": message} for name in ("run_at", "delay_seconds")]
    if errors or parsed is None:
        raise invalid_fields(errors)
    return parsed


class Replay(_NoNulls):
    model_config = ConfigDict(extra="forbid", title="JobReplay", json_schema_extra=no_nulls)

    type: JobTypeFilter | None = Field(default=None, description="only dead jobs of this type")
    limit: Annotated[int, Field(strict=True, ge=1, le=10_000), INTEGRAL] = Field(
        default=1000, description="at most this many, oldest first"
    )
