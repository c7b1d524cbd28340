"""Apply Alembic migrations from code (``switchyard db upgrade``, ``make dev``, tests), and
wait for them (``switchyard db wait``).

Guarantee: :func:`wait_for_head` returns only once the database's schema is at the head
revision this code ships, so a process started after it never meets a missing table;
otherwise it raises :class:`SchemaNotReady` saying what it last saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from switchyard.config import Settings
from switchyard.db.engine import ensure_database

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaNotReady(RuntimeError):
    """The database did not reach the head revision in time; the message says why."""


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may contain percent-encoding.
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Create the database when missing, then migrate it to ``revision``."""
    ensure_database(settings)
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


def head_revisions() -> frozenset[str]:
    """The head revision(s) this code ships."""
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def current_revisions(settings: Settings) -> frozenset[str]:
    """The database's revision(s); empty when it was never migrated."""
    engine = sa.create_engine(
        settings.sqlalchemy_url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as connection:
            return frozenset(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def wait_for_head(
    settings: Settings,
    timeout: float,
    poll_seconds: float = 1.0,
    on_wait: Callable[[str], None] = lambda _: None,
) -> str:
    """Poll until the schema is at head; the head on success. ``on_wait`` hears each
    reason to wait (database unreachable, behind) once per change."""
    heads = head_revisions()
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            current = current_revisions(settings)
            if current == heads:
                return ", ".join(sorted(heads))
            seen = ", ".join(sorted(current)) or "none (never migrated)"
            reason = f"database at revision {seen}, this code needs {', '.join(sorted(heads))}"
        except sa.exc.SQLAlchemyError as exc:
            reason = f"database unreachable: {str(getattr(exc, 'orig', exc)).strip()[:300]}"
        if reason != last:
            on_wait(reason)
            last = reason
        if time.monotonic() + poll_seconds > deadline:
            raise SchemaNotReady(
                f"schema not at head after {timeout:g}s: {reason}; "
                "run `switchyard db upgrade` (the migration Job) first"
            )
        time.sleep(poll_seconds)
