"""The catalogue of job types: each name and the payload model it is validated with.

Guarantee: a job is stored only if its type is in this catalogue and its payload
validates against the type's model, so a worker never receives a job it cannot parse.
The API validates at enqueue; the job-worker binds one handler to every name here and
refuses to start when one is missing (``switchyard_job_worker.registry``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

__all__ = [
    "CATALOGUE",
    "ChecksRetentionPayload",
    "EchoPayload",
    "FailPayload",
    "HttpRequestPayload",
    "LogsRetentionPayload",
    "SleepPayload",
    "UnknownJobType",
    "ValidationError",
    "validate_payload",
]

MAX_HTTP_BODY_CHARS = 65_536


class UnknownJobType(ValueError):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(CATALOGUE))
        super().__init__(f"unknown job type {name!r}; known types: {known}")
        self.name = name


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EchoPayload(BaseModel):
    """Any JSON object; the job's result is the payload itself."""

    model_config = ConfigDict(extra="allow", frozen=True)


class SleepPayload(_Payload):
    seconds: float = Field(ge=0, le=86_400, description="How long the job sleeps.")


class FailPayload(_Payload):
    times: int = Field(
        ge=0, le=1_000, description="The first `times` attempts fail; the next one succeeds."
    )


class HttpRequestPayload(_Payload):
    """Call a URL (webhook delivery) through the SSRF guard; non-2xx is a failed attempt."""

    url: HttpUrl
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    body: Any = Field(default=None, description="Sent as JSON when not null.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class LogsRetentionPayload(_Payload):
    days: int = Field(ge=1, le=3_650, description="Logs older than this many days are deleted.")
    service: str | None = Field(default=None, min_length=1, max_length=200)


class ChecksRetentionPayload(_Payload):
    days: int = Field(
        ge=1, le=3_650, description="Probe results older than this many days are deleted."
    )
    target_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


CATALOGUE: dict[str, type[BaseModel]] = {
    "echo": EchoPayload,
    "sleep": SleepPayload,
    "fail": FailPayload,
    "http.request": HttpRequestPayload,
    "logs.retention": LogsRetentionPayload,
    "checks.retention": ChecksRetentionPayload,
}


def validate_payload(job_type: str, payload: Any) -> BaseModel:
    """The payload as its type's model; :class:`UnknownJobType` or ``ValidationError``."""
    model = CATALOGUE.get(job_type)
    if model is None:
        raise UnknownJobType(job_type)
    return model.model_validate(payload)
