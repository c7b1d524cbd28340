"""health-checker targets, checks, shard leases

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checker_replicas",
        sa.Column("replica", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica", name=op.f("pk_checker_replicas")),
    )
    op.create_table(
        "checker_shards",
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("token", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("'epoch'"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_checker_shards")),
    )
    op.create_table(
        "target_checks",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("status IN ('up', 'down')", name=op.f("ck_target_checks_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_checks")),
    )
    op.create_index("ix_target_checks_checked_at", "target_checks", ["checked_at"], unique=False)
    op.create_index(
        "ix_target_checks_target_checked",
        "target_checks",
        ["target_id", "checked_at", "id"],
        unique=False,
    )
    op.create_table(
        "targets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("timeout_seconds", sa.Double(), nullable=False),
        sa.Column("expected_status", sa.Integer(), nullable=True),
        sa.Column("failures_to_down", sa.Integer(), nullable=False),
        sa.Column("successes_to_up", sa.Integer(), nullable=False),
        sa.Column(
            "shard", sa.SmallInteger(), sa.Computed("mod(id, 64)", persisted=True), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("status", sa.String(length=8), server_default="unknown", nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("consecutive_successes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("incident_id", sa.UUID(), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_latency_ms", sa.Double(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('unknown', 'up', 'down')", name=op.f("ck_targets_status")),
        sa.CheckConstraint(
            "interval_seconds BETWEEN 1 AND 86400", name=op.f("ck_targets_interval")
        ),
        sa.CheckConstraint(
            "timeout_seconds > 0 AND timeout_seconds <= 300", name=op.f("ck_targets_timeout")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint("name", name=op.f("uq_targets_name")),
    )
    op.create_index("ix_targets_shard", "targets", ["shard"], unique=False)
    # Every shard exists from the start, free: replicas lease them by UPDATE.
    op.execute("INSERT INTO checker_shards (shard) SELECT generate_series(0, 63)")


def downgrade() -> None:
    op.drop_index("ix_targets_shard", table_name="targets")
    op.drop_table("targets")
    op.drop_index("ix_target_checks_target_checked", table_name="target_checks")
    op.drop_index("ix_target_checks_checked_at", table_name="target_checks")
    op.drop_table("target_checks")
    op.drop_table("checker_shards")
    op.drop_table("checker_replicas")
