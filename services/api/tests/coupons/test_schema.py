"""Migration 0002 builds what the models say, the database enforces the rules itself, and
the migration goes down and up again."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from switchyard.config import Settings
from switchyard.db.migrate import downgrade, upgrade
from switchyard.db.models import Base

pytestmark = pytest.mark.integration


def test_migration_matches_the_models(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [
            d
            for d in compare_metadata(context, Base.metadata)
            if any(table in repr(d) for table in ("'coupons'", "'claims'"))
        ]
    assert differences == []


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (
            "INSERT INTO coupons (name, amount, remaining_amount) VALUES (' bad name', 1, 1)",
            "ck_coupons_name_format",
        ),
        (
            "INSERT INTO coupons (name, amount, remaining_amount) VALUES (:n || 'z', 0, 0)",
            "ck_coupons_amount_positive",
        ),
        (
            "UPDATE coupons SET remaining_amount = -1 WHERE name = :n",
            "ck_coupons_remaining_in_range",
        ),
        (
            "INSERT INTO claims (user_id, coupon_name) VALUES ('u1', :n)",
            "uq_claims_user_id_coupon_name",
        ),
        (
            "INSERT INTO claims (user_id, coupon_name) VALUES ('u2', 'NO_SUCH_COUPON')",
            "fk_claims_coupon_name_coupons",
        ),
    ],
)
def test_the_database_refuses_what_the_api_never_sends(
    engine: sa.Engine, statement: str, constraint: str
) -> None:
    name = f"SCHEMA_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO coupons (name, amount, remaining_amount) VALUES (:n, 2, 2)"),
            {"n": name},
        )
        connection.execute(
            sa.text("INSERT INTO claims (user_id, coupon_name) VALUES ('u1', :n)"), {"n": name}
        )
    with pytest.raises(sa.exc.IntegrityError, match=constraint), engine.begin() as connection:
        connection.execute(sa.text(statement), {"n": name})


def test_downgrade_and_upgrade_again(settings: Settings) -> None:
    base = settings.database_url.rsplit("/", 1)[0]
    scratch = settings.model_copy(
        update={"database_url": f"{base}/switchyard_migration_{uuid.uuid4().hex[:8]}"}
    )
    upgrade(scratch, "0002")
    downgrade(scratch, "0001")
    engine = sa.create_engine(scratch.sqlalchemy_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            assert connection.execute(
                sa.text(
                    "SELECT to_regclass('coupons'), to_regclass('claims'),"
                    " to_regproc('claim_coupon_batch')"
                )
            ).one() == (None, None, None)
        upgrade(scratch, "0002")
        with engine.connect() as connection:
            assert connection.execute(
                sa.text("SELECT to_regproc('claim_coupon_batch') IS NOT NULL")
            ).scalar_one()
    finally:
        engine.dispose()


def test_migration_0004_widens_names_and_goes_back(settings: Settings) -> None:
    base = settings.database_url.rsplit("/", 1)[0]
    scratch = settings.model_copy(
        update={"database_url": f"{base}/switchyard_migration_{uuid.uuid4().hex[:8]}"}
    )
    upgrade(scratch, "0004")
    engine = sa.create_engine(scratch.sqlalchemy_url, poolclass=sa.pool.NullPool)
    insert = sa.text("INSERT INTO coupons (name, amount, remaining_amount) VALUES (:n, 1, 1)")
    try:
        with engine.begin() as connection:
            connection.execute(insert, {"n": "BLACK FRIDAY 50% " + "x" * 200})
        for bad in (" lead", "trail ", "tab\there", "x" * 256):
            with pytest.raises(sa.exc.DBAPIError), engine.begin() as connection:
                connection.execute(insert, {"n": bad})
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM coupons"))
        downgrade(scratch, "0003")
        upgrade(scratch, "0004")
    finally:
        engine.dispose()
