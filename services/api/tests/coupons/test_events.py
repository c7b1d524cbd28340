"""coupon.created and coupon.claimed go through the outbox, in the change's own transaction."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.kafka.topics import COUPONS, topic_name
from switchyard_api.coupons.store import ClaimRequest, CouponStore, Outcome

if TYPE_CHECKING:
    from conftest import Api

pytestmark = pytest.mark.integration


def _events(engine: sa.Engine, coupon: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = (
            connection.execute(
                sa.text(
                    "SELECT topic, key, payload, headers FROM outbox WHERE key = :key ORDER BY id"
                ),
                {"key": coupon},
            )
            .mappings()
            .all()
        )
    return [{**row, "payload": orjson.loads(row["payload"])} for row in rows]


def _claims(engine: sa.Engine, coupon: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text("SELECT count(*) FROM claims WHERE coupon_name = :n"), {"n": coupon}
            ).scalar_one()
        )


def test_each_success_publishes_one_event(api: Api, engine: sa.Engine, settings: Settings) -> None:
    name = api.create(1, "EVT")
    response = api.call(
        "POST",
        "/api/coupons/claim",
        {"user_id": "winner", "coupon_name": name},
        headers={"X-Request-ID": f"claim-{name}"},
    )
    assert response.status_code == 200
    assert api.claim("winner", name) == 409
    assert api.claim("loser", name) == 400

    created, claimed = _events(engine, name)
    assert created["payload"]["type"] == "coupon.created"
    assert created["payload"]["data"] == {"name": name, "amount": 1}
    assert claimed["topic"] == topic_name(settings, COUPONS)
    assert claimed["headers"]["ce_type"] == "coupon.claimed"
    assert claimed["headers"]["x-request-id"] == f"claim-{name}"
    assert claimed["payload"]["subject"] == name
    assert claimed["payload"]["data"] == {"coupon_name": name, "user_id": "winner"}


def test_a_failed_batch_commits_nothing(engine: sa.Engine) -> None:
    store = CouponStore(engine, "test.coupons")
    name = f"FAIL_{uuid.uuid4().hex[:12]}"
    store.create(name, 5, None)
    # The second claim breaks a column limit: the whole batch, first claim too, is undone.
    with pytest.raises(sa.exc.DBAPIError):
        store.claim_batch(name, [ClaimRequest("fine"), ClaimRequest("x" * 200)])
    assert _claims(engine, name) == 0
    assert [e["payload"]["type"] for e in _events(engine, name)] == ["coupon.created"]
    assert store.get(name) == {"name": name, "amount": 5, "remaining_amount": 5, "claimed_by": []}


def test_a_rolled_back_claim_leaves_no_event(engine: sa.Engine) -> None:
    store = CouponStore(engine, "test.coupons")
    name = f"ROLLBACK_{uuid.uuid4().hex[:12]}"
    store.create(name, 1, None)
    assert store.claim_conditional(name, ClaimRequest("first")) is Outcome.CLAIMED
    # Sold out: this claim's row was inserted, then rolled back with its transaction.
    assert store.claim_conditional(name, ClaimRequest("second")) is Outcome.SOLD_OUT
    assert _claims(engine, name) == 1
    assert [e["payload"]["type"] for e in _events(engine, name)] == [
        "coupon.created",
        "coupon.claimed",
    ]
