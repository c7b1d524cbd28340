"""The migrations build the schema the models describe: a model changed without a
migration (or the reverse) fails here, not in production."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from switchyard.db.models import Base

pytestmark = pytest.mark.integration


def test_migrated_schema_equals_the_models(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
