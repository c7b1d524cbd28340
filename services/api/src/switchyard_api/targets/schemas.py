"""Bodies, responses and queries of ``/targets``.

``POST /targets`` takes :class:`~switchyard.targets.spec.TargetDeclaration`, the model a
targets file is checked with, so both accept the same targets. Cursors have documented
patterns, and every string matching one is a position (see ``http.pagination``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from switchyard.targets import spec
from switchyard.targets.records import CheckStatus, TargetStatus
from switchyard_api.http.fields import explained, without_null
from switchyard_api.http.pagination import PageQuery

for _pattern, _message in spec.PATTERN_MESSAGES.items():
    explained(_pattern, _message)

MAX_ID = 2**63 - 1
TargetId = Annotated[int, Field(ge=1, le=MAX_ID)]
# The list cursor is the last id of the previous page: any such number is a position.
ID_CURSOR = explained(r"^(0|[1-9][0-9]{0,17})$", "not a cursor this API issues")
# The history cursor is the last check seen: microseconds since the epoch, "_", its id.
HISTORY_CURSOR = explained(
    r"^-?(0|[1-9][0-9]{0,17})_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
    r"-[0-9a-fA-F]{12}$",
    "not a cursor this API issues",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST, _LAST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


def history_cursor(checked_at: datetime, check_id: str) -> str:
    micros = (checked_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{check_id}"


def read_history_cursor(cursor: str) -> tuple[datetime, str]:
    """A cursor's position; one beyond the dates Python holds stands before (or after)
    every stored check, which Python could not read either."""
    micros, check_id = cursor.split("_")
    try:
        checked_at = _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        checked_at = _FIRST if micros.startswith("-") else _LAST
    return checked_at, check_id.lower()


class TargetCreate(spec.TargetDeclaration):
    model_config = ConfigDict(title="TargetCreate")


def _patch_schema(schema: dict[str, Any]) -> None:
    for name, prop in schema.get("properties", {}).items():
        if name != "expected_status":
            schema["properties"][name] = without_null(prop)
    schema["minProperties"] = 1


class TargetPatch(BaseModel):
    """Any non-empty subset of the declared fields; only ``expected_status`` takes null
    (back to any 2xx)."""

    model_config = ConfigDict(extra="forbid", title="TargetPatch", json_schema_extra=_patch_schema)

    name: spec.Name | None = None
    url: spec.Url | None = None
    interval_seconds: spec.IntervalSeconds | None = None
    timeout_seconds: spec.TimeoutSeconds | None = None
    expected_status: spec.ExpectedStatus | None = Field(
        default=None, description="null: any 2xx counts as up"
    )
    failures_to_down: spec.Threshold | None = None
    successes_to_up: spec.Threshold | None = None

    @field_validator(
        "name",
        "url",
        "interval_seconds",
        "timeout_seconds",
        "failures_to_down",
        "successes_to_up",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields sent: leaving one out is how a PATCH keeps it.
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep it")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> TargetPatch:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self


class Target(BaseModel):
    model_config = ConfigDict(title="Target")

    id: int
    name: str
    url: str
    interval_seconds: int
    timeout_seconds: float
    expected_status: int | None = Field(description="null: any 2xx counts as up")
    failures_to_down: int
    successes_to_up: int
    status: TargetStatus = Field(description="unknown until enough checks decide up or down")
    status_changed_at: datetime | None
    incident_id: str | None = Field(
        description="the current (or last) outage's id, as in its target.down and target.up"
    )
    last_checked_at: datetime | None
    last_latency_ms: float | None
    last_status_code: int | None
    last_error: str | None
    uptime_24h: float | None = Field(
        ge=0, le=1, description="share of up checks over the last 24 h; null without checks"
    )
    created_at: datetime
    updated_at: datetime


class TargetPage(BaseModel):
    model_config = ConfigDict(title="TargetPage")

    items: list[Target]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class TargetListQuery(PageQuery):
    status: TargetStatus | None = Field(default=None, description="only targets in this status")
    cursor: Annotated[str, Field(pattern=ID_CURSOR)] | None = Field(
        default=None, description="`next_cursor` of the previous page (the last id seen)"
    )


class TargetCheck(BaseModel):
    model_config = ConfigDict(title="TargetCheck")

    checked_at: datetime
    status: CheckStatus
    latency_ms: float | None
    status_code: int | None = Field(description="HTTP status; null for TCP or no answer")
    error: str | None = Field(description="why it is down; null when up")


class TargetCheckPage(BaseModel):
    model_config = ConfigDict(title="TargetCheckPage")

    items: list[TargetCheck] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class HistoryQuery(PageQuery):
    cursor: Annotated[str, Field(pattern=HISTORY_CURSOR)] | None = Field(
        default=None, description="`next_cursor` of the previous page (the last check seen)"
    )
