from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from switchyard.db.models.base import Base

MAX_NAME_LENGTH = 255
MAX_USER_ID_LENGTH = 128
# Printable (no control characters), no leading or trailing space: the API's rule, kept by
# the database too (migration 0004).
NAME_CHECK = (
    f"char_length(name) BETWEEN 1 AND {MAX_NAME_LENGTH}"
    r" AND name !~ '[\x01-\x1f\x7f-\x9f]' AND name NOT LIKE ' %' AND name NOT LIKE '% '"
)


class Coupon(Base):
    """A flash-sale coupon. Its claims live in ``claims``, never inside this row."""

    __tablename__ = "coupons"

    name: Mapped[str] = mapped_column(sa.String(MAX_NAME_LENGTH), primary_key=True)
    amount: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    remaining_amount: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )

    __table_args__ = (
        sa.CheckConstraint(NAME_CHECK, name="name_format"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        # The last line of defence against an oversell, whatever the code does.
        sa.CheckConstraint("remaining_amount BETWEEN 0 AND amount", name="remaining_in_range"),
    )


class Claim(Base):
    """One user's claim of one coupon; the unique pair makes a second claim impossible."""

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(MAX_USER_ID_LENGTH), nullable=False)
    coupon_name: Mapped[str] = mapped_column(
        sa.String(MAX_NAME_LENGTH), sa.ForeignKey("coupons.name"), nullable=False
    )
    claimed_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )

    __table_args__ = (
        sa.UniqueConstraint("user_id", "coupon_name"),
        # claimed_by lists a coupon's claimants in claim order.
        sa.Index("ix_claims_coupon_name_id", "coupon_name", "id"),
    )
