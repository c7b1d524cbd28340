"""Logs and health pings (seed 001), written in bulk by the batcher, read by the API.

The primary key is the event id, so a redelivered event can never become a second row.
Reads are newest first by ``timestamp`` with ``id`` as tie-breaker; each index matches
one filter of the read API. Few indexes on purpose: each one costs every bulk insert.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from switchyard.db.models.base import Base

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
HEALTH_STATUSES = ("up", "down", "degraded")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class LogEntry(Base):
    __tablename__ = "logs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    service: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    level: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    message: Mapped[str] = mapped_column(sa.Text, nullable=False)
    timestamp: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    # Transaction start of the batch write; with received_at it gives the ingest lag.
    stored_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )

    __table_args__ = (
        sa.CheckConstraint(_in("level", LOG_LEVELS), name="level"),
        sa.Index("ix_logs_timestamp_id", "timestamp", "id"),
        sa.Index("ix_logs_service_timestamp_id", "service", "timestamp", "id"),
    )


class HealthPing(Base):
    __tablename__ = "health_pings"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    service: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    latency_ms: Mapped[float | None] = mapped_column(sa.Double)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Set for the health-checker's probes (target.checked), NULL for POST /health.
    target_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    timestamp: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )

    __table_args__ = (
        sa.CheckConstraint(_in("status", HEALTH_STATUSES), name="status"),
        sa.Index("ix_health_pings_timestamp_id", "timestamp", "id"),
        sa.Index("ix_health_pings_service_timestamp_id", "service", "timestamp", "id"),
        sa.Index(
            "ix_health_pings_target_timestamp",
            "target_id",
            "timestamp",
            postgresql_where=sa.text("target_id IS NOT NULL"),
        ),
    )
