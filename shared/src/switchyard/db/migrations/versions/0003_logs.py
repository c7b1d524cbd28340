"""logs and health_pings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _common(*columns: sa.Column[object]) -> list[sa.Column[object]]:
    timestamps = [
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]
    return [
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("service", sa.String(200), nullable=False),
        *columns,
        *timestamps,
    ]


def upgrade() -> None:
    op.create_table(
        "logs",
        *_common(
            sa.Column("level", sa.String(10), nullable=False),
            sa.Column("message", sa.Text(), nullable=False),
            sa.Column("attributes", postgresql.JSONB(), nullable=False),
        ),
        sa.CheckConstraint(
            "level IN ('debug', 'info', 'warning', 'error', 'critical')", name="level"
        ),
    )
    op.create_index("ix_logs_timestamp_id", "logs", ["timestamp", "id"])
    op.create_index("ix_logs_service_timestamp_id", "logs", ["service", "timestamp", "id"])
    op.create_table(
        "health_pings",
        *_common(
            sa.Column("status", sa.String(10), nullable=False),
            sa.Column("latency_ms", sa.Double()),
            sa.Column("details", postgresql.JSONB()),
            sa.Column("target_id", sa.BigInteger()),
        ),
        sa.CheckConstraint("status IN ('up', 'down', 'degraded')", name="status"),
    )
    op.create_index("ix_health_pings_timestamp_id", "health_pings", ["timestamp", "id"])
    op.create_index(
        "ix_health_pings_service_timestamp_id", "health_pings", ["service", "timestamp", "id"]
    )
    op.create_index(
        "ix_health_pings_target_timestamp",
        "health_pings",
        ["target_id", "timestamp"],
        postgresql_where=sa.text("target_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("health_pings")
    op.drop_table("logs")
