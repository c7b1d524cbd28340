"""Health-checker targets (seed 001): what to probe, its current status, its checks, and
which replica probes which shard of them. The design is in
``services/health-checker/README.md``; all SQL about them is in :mod:`switchyard.targets`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from switchyard.db.models.base import Base

TARGET_STATUSES = ("unknown", "up", "down")
CHECK_STATUSES = ("up", "down")
SHARDS = 64  # targets are leased to replicas by shard (id mod SHARDS)


class Target(Base):
    __tablename__ = "targets"
    __table_args__ = (
        sa.CheckConstraint("status IN ('unknown', 'up', 'down')", name="status"),
        sa.CheckConstraint("interval_seconds BETWEEN 1 AND 86400", name="interval"),
        sa.CheckConstraint("timeout_seconds > 0 AND timeout_seconds <= 300", name="timeout"),
        sa.Index("ix_targets_shard", "shard"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True, nullable=False)
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    interval_seconds: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    timeout_seconds: Mapped[float] = mapped_column(sa.Double, nullable=False)
    expected_status: Mapped[int | None] = mapped_column(sa.Integer)
    failures_to_down: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    successes_to_up: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    shard: Mapped[int] = mapped_column(
        sa.SmallInteger, sa.Computed(f"mod(id, {SHARDS})", persisted=True), nullable=False
    )
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="1")
    status: Mapped[str] = mapped_column(sa.String(8), nullable=False, server_default="unknown")
    consecutive_failures: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, server_default="0"
    )
    consecutive_successes: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, server_default="0"
    )
    incident_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status_changed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_checked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_latency_ms: Mapped[float | None] = mapped_column(sa.Double)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


class TargetCheck(Base):
    """One probe's result, stored by the batcher from ``target.checked`` (deduplicated by
    the event id). No foreign key: a deleted target's history ages out with retention."""

    __tablename__ = "target_checks"
    __table_args__ = (
        sa.CheckConstraint("status IN ('up', 'down')", name="status"),
        sa.Index("ix_target_checks_target_checked", "target_id", "checked_at", "id"),
        sa.Index("ix_target_checks_checked_at", "checked_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    target_id: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    latency_ms: Mapped[float | None] = mapped_column(sa.Double)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    checked_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    stored_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


class CheckerShard(Base):
    """Which health-checker replica probes the targets of a shard, under a lease with a
    fencing token: status changes are written only by the shard's current holder."""

    __tablename__ = "checker_shards"

    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(sa.String(200))
    token: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, server_default="0")
    expires_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), nullable=False, server_default=sa.text("'epoch'")
    )


class CheckerReplica(Base):
    """Live replicas (seen within a lease): each takes its fair share of the shards."""

    __tablename__ = "checker_replicas"

    replica: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
