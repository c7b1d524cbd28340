"""What POST /logs and POST /health accept, and what GET returns; the document's schemas.

Everything accepted can be published, stored and read back: timestamps are RFC 3339
strings within years 1-9999, texts hold no NUL, numbers in ``attributes``/``details`` fit
64 bits (``http.fields``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from switchyard_api.http.fields import JsonObject, Timestamp, explained, text
from switchyard_api.http.pagination import PageQuery

Service = Annotated[str, text(1, 200)]
Level = Literal["debug", "info", "warning", "error", "critical"]
Status = Literal["up", "down", "degraded"]
# The position after an item: microseconds since the Unix epoch, then the item's id.
CURSOR_PATTERN = explained(r"^-?[0-9]{1,18}_[0-9a-f]{32}$", "not a cursor this API issues")
Cursor = Annotated[
    str, Field(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page")
]

_TIMESTAMP = "RFC 3339 with an offset; default: the time the API received it"
_ID = "client-chosen UUID: a retried request with the same ids is stored once; default: a new UUID"


class LogIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="LogIn")

    service: Service
    message: Annotated[str, text(1, 65_536)]
    level: Level = "info"
    timestamp: Timestamp | None = Field(default=None, description=_TIMESTAMP)
    attributes: JsonObject = Field(default_factory=dict)
    id: uuid.UUID | None = Field(default=None, description=_ID)


class HealthIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="HealthIn")

    service: Service
    status: Status
    latency_ms: Annotated[float, Field(ge=0, le=86_400_000, strict=True)] | None = None
    timestamp: Timestamp | None = Field(default=None, description=_TIMESTAMP)
    details: JsonObject | None = None
    id: uuid.UUID | None = Field(default=None, description=_ID)


LogsBody = LogIn | Annotated[list[LogIn], Field(min_length=1)]
HealthBody = HealthIn | Annotated[list[HealthIn], Field(min_length=1)]


class Accepted(BaseModel):
    model_config = ConfigDict(title="Accepted")

    accepted: int = Field(description="events Kafka acknowledged (all of the request)")


class HealthQuery(PageQuery):
    service: Service | None = Field(default=None, description="exact service name")
    since: Timestamp | None = Field(default=None, description="RFC 3339, inclusive")
    until: Timestamp | None = Field(default=None, description="RFC 3339, exclusive")
    cursor: Cursor | None = None


class LogQuery(HealthQuery):
    level: Level | None = Field(default=None, description="exact level")
    q: Annotated[str, text(1, 200)] | None = Field(
        default=None, description="case-insensitive substring of the message"
    )


class LogEntry(BaseModel):
    model_config = ConfigDict(title="LogEntry")

    id: uuid.UUID
    service: str
    level: str
    message: str
    timestamp: datetime
    # Any JSON, not just objects: a row some other writer stored must still be readable.
    attributes: Any = Field(description="the object sent")
    received_at: datetime = Field(description="when the API accepted it")


class HealthPing(BaseModel):
    model_config = ConfigDict(title="HealthPing")

    id: uuid.UUID
    service: str
    status: str
    latency_ms: float | None
    details: Any = Field(description="the object sent, or null")
    target_id: int | None = Field(description="the health-checker's target, if it probed")
    timestamp: datetime
    received_at: datetime


class LogPage(BaseModel):
    model_config = ConfigDict(title="LogPage")

    items: list[LogEntry]
    next_cursor: str | None


class HealthPage(BaseModel):
    model_config = ConfigDict(title="HealthPingPage")

    items: list[HealthPing]
    next_cursor: str | None
