"""The SQLAlchemy engine every service uses."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from switchyard.config import Settings


def create_engine(settings: Settings, **overrides: object) -> sa.Engine:
    options: dict[str, object] = {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "connect_args": {
            "connect_timeout": 5,
            "application_name": settings.service_name,
        },
    }
    if "poolclass" in overrides:  # sizes belong to the default QueuePool only
        options.pop("pool_size")
        options.pop("max_overflow")
    options.update(overrides)
    return sa.create_engine(settings.sqlalchemy_url, **options)


def ensure_database(settings: Settings) -> bool:
    """Create the configured database if it does not exist; True when it was created."""
    url = make_url(settings.sqlalchemy_url)
    admin = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": url.database},
            ).scalar()
            if exists:
                return False
            connection.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
            return True
    finally:
        admin.dispose()
