"""coupons, claims, and claim_coupon_batch()

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The fast claim path (group commit) in one statement: the coupon row is locked, the
# batch answered in arrival order, and the claims, their outbox events and the stock
# change written, all inside PostgreSQL. Called in autocommit, so the row lock is held
# for the work and the commit only, never across a network round trip or a client's GIL.
CLAIM_COUPON_BATCH = """
CREATE FUNCTION claim_coupon_batch(
    p_coupon text, p_user_ids text[], p_event_ids text[], p_payloads bytea[],
    p_headers jsonb[], p_topic text, p_channel text,
    OUT o_outcomes smallint[], OUT o_amount integer, OUT o_remaining integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_holders text[];
    v_granted integer[] := '{}';
BEGIN
    o_outcomes := '{}';
    SELECT c.amount, c.remaining_amount INTO o_amount, o_remaining
      FROM coupons c WHERE c.name = p_coupon FOR UPDATE;
    IF NOT FOUND THEN
        o_outcomes := array_fill(404::smallint, ARRAY[cardinality(p_user_ids)]);
        RETURN;
    END IF;
    -- A new statement takes a new READ COMMITTED snapshot, after the lock was granted:
    -- it sees every claim committed by the transactions this one queued behind.
    SELECT coalesce(array_agg(cl.user_id), '{}') INTO v_holders
      FROM claims cl WHERE cl.coupon_name = p_coupon AND cl.user_id = ANY (p_user_ids);
    FOR i IN 1 .. cardinality(p_user_ids) LOOP
        IF p_user_ids[i] = ANY (v_holders) THEN
            o_outcomes := o_outcomes || 409::smallint;
        ELSIF o_remaining > 0 THEN
            o_remaining := o_remaining - 1;
            v_holders := v_holders || p_user_ids[i];
            v_granted := v_granted || i;
            o_outcomes := o_outcomes || 200::smallint;
        ELSE
            o_outcomes := o_outcomes || 400::smallint;
        END IF;
    END LOOP;
    IF cardinality(v_granted) > 0 THEN
        INSERT INTO claims (user_id, coupon_name)
            SELECT p_user_ids[g.i], p_coupon
              FROM unnest(v_granted) WITH ORDINALITY AS g(i, n) ORDER BY g.n;
        INSERT INTO outbox (event_id, topic, key, payload, headers)
            SELECT p_event_ids[g.i], p_topic, p_coupon, p_payloads[g.i], p_headers[g.i]
              FROM unnest(v_granted) AS g(i);
        -- Relative: if the lock were ever missing, the CHECK refuses an oversell.
        UPDATE coupons SET remaining_amount = remaining_amount - cardinality(v_granted)
         WHERE name = p_coupon;
        PERFORM pg_notify(p_channel, '');
    END IF;
END
$$
"""

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("remaining_amount", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("name ~ '^[A-Za-z0-9_-]{1,64}$'", name="name_format"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("remaining_amount BETWEEN 0 AND amount", name="remaining_in_range"),
    )
    op.create_table(
        "claims",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("coupon_name", sa.String(64), sa.ForeignKey("coupons.name"), nullable=False),
        sa.Column(
            "claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("user_id", "coupon_name"),
    )
    op.create_index("ix_claims_coupon_name_id", "claims", ["coupon_name", "id"])
    op.execute(CLAIM_COUPON_BATCH)


def downgrade() -> None:
    op.execute("DROP FUNCTION claim_coupon_batch")
    op.drop_index("ix_claims_coupon_name_id", table_name="claims")
    op.drop_table("claims")
    op.drop_table("coupons")
