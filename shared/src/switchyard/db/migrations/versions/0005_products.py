"""products (seed 002) with the image-worker's processing state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_id", sa.Integer, sa.Identity(), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("product_name", sa.String(200), nullable=False),
        sa.Column("product_description", sa.Text, nullable=False),
        sa.Column("product_images", ARRAY(sa.Text), nullable=False),
        sa.Column("product_price", sa.Numeric(12, 2), nullable=False),
        sa.Column(
            "compressed_product_images",
            ARRAY(sa.Text),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("image_errors", JSONB, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("image_details", JSONB, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_products")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_products_user_id_users")
        ),
        sa.CheckConstraint(
            "cardinality(product_images) BETWEEN 1 AND 20", name=op.f("ck_products_images_count")
        ),
        sa.CheckConstraint("product_price >= 0", name=op.f("ck_products_price_not_negative")),
        sa.CheckConstraint(
            "char_length(product_description) <= 10000", name=op.f("ck_products_description_length")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'done', 'failed')",
            name=op.f("ck_products_status_known"),
        ),
    )
    op.create_index("ix_products_user_id_product_id", "products", ["user_id", "product_id"])


def downgrade() -> None:
    op.drop_table("products")
