"""Bodies of ``/users``; their JSON Schemas, in the OpenAPI document, carry every rule."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from switchyard_api.http.fields import explained, no_nulls, trimmed
from switchyard_api.http.pagination import PageQuery

# Digits, spaces and dashes after an optional +; nothing is stripped or rewritten.
MOBILE_PATTERN = explained(
    r"^\+?[0-9][0-9 \-]{5,30}$", "must be 6 to 31 digits, spaces or dashes, optionally after a +"
)

Name = Annotated[str, trimmed(200, "1-200 printable characters, no leading or trailing spaces")]
Mobile = Annotated[
    str,
    Field(
        pattern=MOBILE_PATTERN, description="6 to 31 digits, spaces or dashes, optional leading +"
    ),
]
Latitude = Annotated[float, Field(ge=-90, le=90, strict=True)]
Longitude = Annotated[float, Field(ge=-180, le=180, strict=True)]
# The cursor is the last id of the previous page: any such number is a valid position.
USER_CURSOR = explained(r"^(0|[1-9][0-9]{0,17})$", "not a cursor this API issues")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", title="UserCreate")

    name: Name
    mobile: Mobile
    latitude: Latitude
    longitude: Longitude


def _patch_schema(schema: dict[str, Any]) -> None:
    no_nulls(schema)
    schema["minProperties"] = 1


class UserPatch(BaseModel):
    """Any non-empty subset of the fields; null is not a value (the schema has no null)."""

    model_config = ConfigDict(extra="forbid", title="UserPatch", json_schema_extra=_patch_schema)

    name: Name | None = None
    mobile: Mobile | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields sent: leaving one out is how a PATCH keeps it.
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep it")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> UserPatch:
        if not self.model_fields_set:
            raise ValueError("send at least one of name, mobile, latitude, longitude")
        return self


class User(BaseModel):
    model_config = ConfigDict(title="User")

    id: int
    name: str
    mobile: str
    latitude: float
    longitude: float
    created_at: str = Field(description="RFC 3339")
    updated_at: str = Field(description="RFC 3339")


class UserPage(BaseModel):
    model_config = ConfigDict(title="UserPage")

    items: list[User]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class UserListQuery(PageQuery):
    cursor: Annotated[str, Field(pattern=USER_CURSOR)] | None = Field(
        default=None, description="`next_cursor` of the previous page (the last id seen)"
    )
