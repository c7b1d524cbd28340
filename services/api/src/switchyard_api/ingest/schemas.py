"""What POST /logs and POST /health accept, and what GET returns."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

Service = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Level = Literal["debug", "info", "warning", "error", "critical"]
Status = Literal["up", "down", "degraded"]

_TIMESTAMP = "RFC 3339 with a UTC offset; default: the time the API received it"
_ID = ("client-chosen UUID: a retried request with the same ids is stored once; "
       "default: a new UUID")


class LogIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="LogIn")

    service: Service
    message: Annotated[str, StringConstraints(min_length=1, max_length=65_536)]
    level: Level = "info"
    timestamp: AwareDatetime | None = Field(default=None, description=_TIMESTAMP)
    attributes: dict[str, Any] = Field(default_factory=dict)
    id: uuid.UUID | None = Field(default=None, description=_ID)


class HealthIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="HealthIn")

    service: Service
    status: Status
    latency_ms: Annotated[float, Field(ge=0, le=86_400_000)] | None = None
    timestamp: AwareDatetime | None = Field(default=None, description=_TIMESTAMP)
    details: dict[str, Any] | None = None
    id: uuid.UUID | None = Field(default=None, description=_ID)


class Accepted(BaseModel):
    model_config = ConfigDict(title="Accepted")

    accepted: int = Field(description="events Kafka acknowledged (all of the request)")


class LogQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: Service | None = None
    level: Level | None = None
    since: AwareDatetime | None = Field(default=None, description="inclusive")
    until: AwareDatetime | None = Field(default=None, description="exclusive")
    q: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="case-insensitive substring of the message")


class HealthQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: Service | None = None
    since: AwareDatetime | None = Field(default=None, description="inclusive")
    until: AwareDatetime | None = Field(default=None, description="exclusive")


class LogOut(BaseModel):
    model_config = ConfigDict(title="LogEntry")

    id: uuid.UUID
    service: str
    level: Level
    message: str
    timestamp: str = Field(description="RFC 3339")
    attributes: dict[str, Any]
    received_at: str = Field(description="RFC 3339: when the API accepted it")


class HealthOut(BaseModel):
    model_config = ConfigDict(title="HealthPing")

    id: uuid.UUID
    service: str
    status: Status
    latency_ms: float | None
    details: dict[str, Any] | None
    target_id: int | None = Field(description="the health-checker's target, if it probed")
    timestamp: str = Field(description="RFC 3339")
    received_at: str = Field(description="RFC 3339")
