"""The fast path never changes an answer: it matches PostgreSQL alone, claim for claim."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from switchyard_api.coupons.store import ClaimRequest, CouponStore, Outcome

if TYPE_CHECKING:
    from conftest import Api

pytestmark = pytest.mark.integration


def _twins(store: CouponStore, stock: int, count: int) -> list[str]:
    names = [f"EQ_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    for name in names:
        assert store.create(name, stock, None)
    return names


def test_batches_answer_exactly_like_one_claim_at_a_time(engine: sa.Engine) -> None:
    """claim_coupon_batch() against the textbook transaction, on random batches."""
    store = CouponStore(engine, "test.coupons")
    rng = random.Random(2024)
    for _ in range(40):
        batched, serial, conditional = _twins(store, rng.randint(1, 6), 3)
        # Few users, many claims: repeats inside one batch, across batches, after sell-out.
        users = [f"u{rng.randint(0, 9)}" for _ in range(rng.randint(1, 30))]
        got: list[Outcome] = []
        start = 0
        while start < len(users):
            size = rng.randint(1, 8)
            chunk = [ClaimRequest(user) for user in users[start : start + size]]
            got += store.claim_batch(batched, chunk).outcomes
            start += size
        expected = [store.claim_for_update(serial, ClaimRequest(user)) for user in users]
        assert got == expected
        assert [store.claim_conditional(conditional, ClaimRequest(u)) for u in users] == expected
        reference = store.get(serial)
        assert reference is not None
        for name in (batched, conditional):
            assert store.get(name) == {**reference, "name": name}
    missing = store.claim_batch("EQ_missing", [ClaimRequest("a"), ClaimRequest("b")])
    assert missing.outcomes == [Outcome.NO_COUPON] * 2 and not missing.sold_out


def _script(seed: int) -> tuple[list[int], list[tuple[str, int]]]:
    """Stocks of three coupons, and claims of (user, coupon index; 3 = no such coupon)."""
    rng = random.Random(seed)
    stocks = [1, 3, 8]
    claims = [(f"user_{rng.randint(0, 11)}", rng.choice((0, 0, 1, 1, 2, 2, 3))) for _ in range(120)]
    return stocks, claims


def _replay(api: Api, seed: int) -> tuple[list[int], list[tuple[int, list[str]]]]:
    stocks, claims = _script(seed)
    names = [api.create(stock, "REPLAY") for stock in stocks] + [f"MISSING_{uuid.uuid4().hex}"]
    statuses = [api.claim(user, names[index]) for user, index in claims]
    final = [(c["remaining_amount"], c["claimed_by"]) for c in map(api.coupon, names[:3])]
    return statuses, final


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_answers_like_postgresql_alone(fast_api: Api, for_update_api: Api, seed: int) -> None:
    fast = _replay(fast_api, seed)
    assert fast == _replay(for_update_api, seed)
    assert {200, 400, 404, 409} <= set(fast[0])


def test_without_redis_the_answers_stay_the_same(no_redis_api: Api, for_update_api: Api) -> None:
    assert _replay(no_redis_api, 4) == _replay(for_update_api, 4)
    name = no_redis_api.create(5, "NOREDIS")
    statuses = no_redis_api.claim_all([(f"u{n}", name) for n in range(50)] * 2, concurrency=50)
    assert Counter(statuses) == {200: 5, 409: 5, 400: 90}
    assert no_redis_api.coupon(name)["remaining_amount"] == 0
