"""Request and response bodies of ``/api/coupons``; the OpenAPI schemas come from these."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from werkzeug.routing import BaseConverter

from switchyard.db.models.coupons import MAX_NAME_LENGTH
from switchyard_api.http.fields import INTEGRAL, trimmed

MAX_AMOUNT = 2_147_483_647  # PostgreSQL integer
# `/api/coupons/claim` is the claim endpoint, so no coupon can be read at that path.
RESERVED_NAME = "claim"


def _not_reserved(value: str) -> str:
    if value == RESERVED_NAME:
        raise ValueError(f"`{RESERVED_NAME}` is reserved")
    return value


CouponName = Annotated[
    str,
    trimmed(
        MAX_NAME_LENGTH,
        f"1-{MAX_NAME_LENGTH} printable characters, no leading or "
        f"trailing spaces, not `{RESERVED_NAME}`; case-sensitive",
    ),
    Field(json_schema_extra={"not": {"const": RESERVED_NAME}}),
    AfterValidator(_not_reserved),
]
UserId = Annotated[
    str, trimmed(128, "1-128 printable characters, no leading or trailing spaces; compared exactly")
]
Amount = Annotated[
    int,
    Field(
        strict=True, ge=1, le=MAX_AMOUNT, description=f"stock: an integer from 1 to {MAX_AMOUNT:,}"
    ),
    INTEGRAL,
]


class CouponNameConverter(BaseConverter):
    """Any text in the path, slashes included (URL-encoded), except the reserved word, so
    GET /api/coupons/claim is a 405 naming only POST."""

    regex = rf"(?!{RESERVED_NAME}$)[^/].*?"
    part_isolating = False


class CouponCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", title="CouponCreate")

    name: CouponName
    amount: Amount


class ClaimCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", title="ClaimCreate")

    user_id: UserId
    coupon_name: CouponName


class Coupon(BaseModel):
    model_config = ConfigDict(title="Coupon")

    name: str
    amount: int
    remaining_amount: int = Field(description="amount minus successful claims, never < 0")
    claimed_by: list[str] = Field(description="every claimant's user_id, in claim order")


class Claim(BaseModel):
    model_config = ConfigDict(title="Claim")

    coupon_name: str
    user_id: str
