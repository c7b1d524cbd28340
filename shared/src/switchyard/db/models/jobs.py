"""Background jobs (seed 003): one row per job, one per finished attempt, schedules,
their fired runs, leader leases and rate-limit slots. The state machine is drawn in
``services/job-worker/DESIGN.md``; all SQL about them is in :mod:`switchyard.jobs`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from switchyard.db.models.base import Base

JOB_STATUSES = ("scheduled", "queued", "running", "retrying", "succeeded", "dead", "cancelled")
ATTEMPT_OUTCOMES = ("succeeded", "failed", "timed_out", "lost", "interrupted")
lease_tokens = sa.Sequence("job_lease_tokens", metadata=Base.metadata)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        sa.Index("ix_jobs_due", "run_at", postgresql_where=sa.text("status = 'scheduled'")),
        sa.Index(
            "ix_jobs_leases", "lease_expires_at", postgresql_where=sa.text("status = 'running'")
        ),
        sa.Index(
            "ix_jobs_lease_token", "lease_token", postgresql_where=sa.text("status = 'running'")
        ),
        sa.Index(
            "ix_jobs_finished",
            "finished_at",
            postgresql_where=sa.text("status IN ('succeeded', 'cancelled')"),
        ),
        sa.Index("ix_jobs_type_status", "type", "status"),
        sa.Index("ix_jobs_status_seq", "status", "seq"),
        sa.Index(
            "ix_jobs_parked",
            "type",
            "seq",
            postgresql_where=sa.text("parked AND status = 'queued'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    payload: Mapped[Any] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="0")
    max_attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    attempt_budget: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    timeout_seconds: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    run_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    lease_token: Mapped[int | None] = mapped_column(sa.BigInteger)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    parked: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, server_default=sa.false())
    schedule_name: Mapped[str | None] = mapped_column(sa.String(200))
    request_id: Mapped[str | None] = mapped_column(sa.String(200))
    traceparent: Mapped[str | None] = mapped_column(sa.String(200))


class JobAttempt(Base):
    __tablename__ = "job_attempts"
    __table_args__ = (sa.CheckConstraint(_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    lease_token: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    attempt: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    worker: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    outcome: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(sa.Text)


class JobSchedule(Base):
    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    cron: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    type: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    payload: Mapped[Any] = mapped_column(JSONB, nullable=False)
    next_fire_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


class ScheduleRun(Base):
    """One row per fired (schedule, fire time): the primary key makes a second enqueue of
    the same run impossible, whichever replica tries."""

    __tablename__ = "schedule_runs"

    schedule_name: Mapped[str] = mapped_column(
        sa.String(200), sa.ForeignKey("schedules.name", ondelete="CASCADE"), primary_key=True
    )
    fire_time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class LeaderLease(Base):
    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    token: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)


class JobRateLimit(Base):
    __tablename__ = "job_rate_limits"

    type: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    next_slot_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
