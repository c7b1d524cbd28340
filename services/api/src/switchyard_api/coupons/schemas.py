"""Request and response bodies of ``/api/coupons``; the OpenAPI schemas come from these."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from switchyard.db.models.coupons import NAME_PATTERN

# GET lists every claimant in one response; a million user ids is already ~20 MB.
MAX_AMOUNT = 1_000_000
_NAME = re.compile(NAME_PATTERN)


def is_coupon_name(value: str) -> bool:
    return _NAME.fullmatch(value) is not None


def _name(value: str) -> str:
    if not is_coupon_name(value):
        raise ValueError("must be 1 to 64 letters, digits, '_' or '-'")
    return value


def _user_id(value: str) -> str:
    # Ids are compared byte for byte, so invisible differences are refused, not guessed at.
    if not value.isprintable() or value != value.strip():
        raise ValueError("must be printable, without leading or trailing spaces")
    return value


CouponName = Annotated[
    str,
    Field(min_length=1, max_length=64, json_schema_extra={"pattern": NAME_PATTERN},
          description="1-64 letters, digits, `_` or `-`; case-sensitive"),
    AfterValidator(_name),
]
UserId = Annotated[
    str,
    Field(min_length=1, max_length=128,
          description="1-128 printable characters, no leading or trailing spaces"),
    AfterValidator(_user_id),
]


class CouponCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", title="CouponCreate")

    name: CouponName
    amount: int = Field(strict=True, gt=0, le=MAX_AMOUNT,
                        description=f"stock: a JSON integer from 1 to {MAX_AMOUNT:,}")


class ClaimCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", title="ClaimCreate")

    user_id: UserId
    coupon_name: CouponName


class CouponOut(BaseModel):
    model_config = ConfigDict(title="Coupon")

    name: str
    amount: int
    remaining_amount: int = Field(description="amount minus successful claims, never < 0")
    claimed_by: list[str] = Field(description="every claimant's user_id, in claim order")


class ClaimOut(BaseModel):
    model_config = ConfigDict(title="Claim")

    coupon_name: str
    user_id: str
