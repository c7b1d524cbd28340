from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from switchyard.db.models.base import Base


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    topic: Mapped[str] = mapped_column(sa.String(249), nullable=False)
    key: Mapped[str | None] = mapped_column(sa.String(256))
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    published_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (
        # The relay reads only unpublished rows, in id order: keep that index small.
        sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
        sa.Index(
            "ix_outbox_published_at",
            "published_at",
            postgresql_where=sa.text("published_at IS NOT NULL"),
        ),
    )


class ProcessedEvent(Base):
    """Event ids a consumer already applied, so a redelivered event has no second effect."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
