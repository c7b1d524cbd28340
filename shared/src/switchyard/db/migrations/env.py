"""Alembic environment: online migrations only, serialised by an advisory lock."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from switchyard.db.models import Base

# Several services may start at once and each may run migrations; one at a time.
MIGRATION_LOCK_KEY = 0x5377_6974_6368  # "Switch"


def run_migrations_online() -> None:
    engine = sa.create_engine(
        context.config.get_main_option("sqlalchemy.url") or "", poolclass=sa.pool.NullPool
    )
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            context.configure(
                connection=connection, target_metadata=Base.metadata, compare_type=True
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            connection.commit()
    engine.dispose()


run_migrations_online()
