from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

_MOBILE = re.compile(r"^\+?[0-9][0-9 \-]{5,30}$")


def _mobile(value: str) -> str:
    if not _MOBILE.match(value):
        raise ValueError("must be 6 to 31 digits, spaces or dashes, optionally after a +")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Mobile = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32),
                   AfterValidator(_mobile)]
Latitude = Annotated[float, Field(ge=-90, le=90, strict=True)]
Longitude = Annotated[float, Field(ge=-180, le=180, strict=True)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", title="UserCreate")

    name: Name
    mobile: Mobile = Field(description="digits, spaces and dashes, optional leading +")
    latitude: Latitude
    longitude: Longitude


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", title="UserPatch")

    name: Name | None = None
    mobile: Mobile | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UserPatch:
        if not self.model_fields_set:
            raise ValueError("send at least one of name, mobile, latitude, longitude")
        for field in self.model_fields_set:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class UserOut(BaseModel):
    model_config = ConfigDict(title="User")

    id: int
    name: str
    mobile: str
    latitude: float
    longitude: float
    created_at: str = Field(description="RFC 3339")
    updated_at: str = Field(description="RFC 3339")
