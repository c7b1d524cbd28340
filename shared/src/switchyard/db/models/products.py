"""Products (seed 002) and the image-worker's processing state.

``compressed_product_images`` has one entry per ``product_images`` entry, in the same
order: the stored path, or NULL for an image that failed (its reason is in
``image_errors``). ``status`` moves pending → processing → done | failed; only the
image-worker changes it after the row is created.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from switchyard.db.models.base import Base, Timestamps

STATUSES = ("pending", "processing", "done", "failed")
MAX_IMAGES = 20
MAX_URL_LENGTH = 2048
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
# numeric(12, 2): up to 9,999,999,999.99.
PRICE_PRECISION, PRICE_SCALE = 12, 2


class Product(Timestamps, Base):
    __tablename__ = "products"

    product_id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    product_name: Mapped[str] = mapped_column(sa.String(MAX_NAME_LENGTH), nullable=False)
    product_description: Mapped[str] = mapped_column(sa.Text, nullable=False)
    product_images: Mapped[list[str]] = mapped_column(ARRAY(sa.Text), nullable=False)
    product_price: Mapped[Decimal] = mapped_column(
        sa.Numeric(PRICE_PRECISION, PRICE_SCALE), nullable=False
    )
    compressed_product_images: Mapped[list[str | None]] = mapped_column(
        ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")
    )
    status: Mapped[str] = mapped_column(
        sa.String(16), nullable=False, server_default=sa.text("'pending'")
    )
    # [{"index", "url", "reason", "message"}] for each image that failed.
    image_errors: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=sa.text("'[]'")
    )
    # [{"index", "path", "variant", "width", "height", "bytes_in", "bytes_out"}] per stored image.
    image_details: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=sa.text("'[]'")
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default=sa.text("0"))
    processed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (
        sa.CheckConstraint(
            f"cardinality(product_images) BETWEEN 1 AND {MAX_IMAGES}", name="images_count"
        ),
        sa.CheckConstraint("product_price >= 0", name="price_not_negative"),
        sa.CheckConstraint(
            f"char_length(product_description) <= {MAX_DESCRIPTION_LENGTH}",
            name="description_length",
        ),
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="status_known"
        ),
        sa.Index("ix_products_user_id_product_id", "user_id", "product_id"),
    )
