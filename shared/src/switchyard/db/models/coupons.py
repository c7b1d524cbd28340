from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from switchyard.db.models.base import Base

NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"


class Coupon(Base):
    """A flash-sale coupon. Its claims live in ``claims``, never inside this row."""

    __tablename__ = "coupons"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    amount: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    remaining_amount: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )

    __table_args__ = (
        sa.CheckConstraint(f"name ~ '{NAME_PATTERN}'", name="name_format"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        # The last line of defence against an oversell, whatever the code does.
        sa.CheckConstraint("remaining_amount BETWEEN 0 AND amount", name="remaining_in_range"),
    )


class Claim(Base):
    """One user's claim of one coupon; the unique pair makes a second claim impossible."""

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    coupon_name: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("coupons.name"), nullable=False
    )
    claimed_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )

    __table_args__ = (
        sa.UniqueConstraint("user_id", "coupon_name"),
        # claimed_by lists a coupon's claimants in claim order.
        sa.Index("ix_claims_coupon_name_id", "coupon_name", "id"),
    )
