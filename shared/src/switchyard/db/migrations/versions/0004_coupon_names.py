"""coupon names: any printable text of 1 to 255 characters (SPEC section 7)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration keeps meaning what it meant when written.
NAME_CHECK = (
    r"char_length(name) BETWEEN 1 AND 255"
    r" AND name !~ '[\x01-\x1f\x7f-\x9f]' AND name NOT LIKE ' %' AND name NOT LIKE '% '"
)
OLD_NAME_CHECK = "name ~ '^[A-Za-z0-9_-]{1,64}$'"


def upgrade() -> None:
    # Widening varchar needs no table rewrite; every existing name meets the new rule.
    op.drop_constraint(op.f("ck_coupons_name_format"), "coupons", type_="check")
    op.alter_column("coupons", "name", type_=sa.String(255), existing_nullable=False)
    op.alter_column("claims", "coupon_name", type_=sa.String(255), existing_nullable=False)
    op.create_check_constraint(op.f("ck_coupons_name_format"), "coupons", NAME_CHECK)


def downgrade() -> None:
    # Fails while a coupon has a name the old rule refuses: those would be lost.
    op.drop_constraint(op.f("ck_coupons_name_format"), "coupons", type_="check")
    op.create_check_constraint(op.f("ck_coupons_name_format"), "coupons", OLD_NAME_CHECK)
    op.alter_column("claims", "coupon_name", type_=sa.String(64), existing_nullable=False)
    op.alter_column("coupons", "name", type_=sa.String(64), existing_nullable=False)
