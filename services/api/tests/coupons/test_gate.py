"""The gate against real Redis: it answers only from complete facts, and steps aside."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from switchyard.config import CouponSettings
from switchyard.redis_client import fail_fast_client
from switchyard_api.coupons.gate import ClaimGate
from switchyard_api.coupons.store import Outcome

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"gate-test-{uuid.uuid4().hex[:8]}:"


def test_claimants_answer_409_and_nobody_else_is_decided(
    redis_client: redis.Redis, prefix: str
) -> None:
    gate = ClaimGate(redis_client, prefix, CouponSettings())
    assert gate.answer("C", "alice") is None
    gate.learn_claimants("C", ["alice"])
    assert gate.answer("C", "alice") is Outcome.ALREADY_CLAIMED
    assert gate.answer("C", "bob") is None  # stock may be left: PostgreSQL decides
    assert gate.answer("OTHER", "alice") is None


def test_a_sold_out_coupon_is_answered_by_every_process(
    redis_client: redis.Redis, prefix: str
) -> None:
    ClaimGate(redis_client, prefix, CouponSettings()).learn_sold_out("C", ["alice", "bob"])
    other_process = ClaimGate(redis_client, prefix, CouponSettings())
    assert other_process.answer("C", "carol") is Outcome.SOLD_OUT
    assert other_process.answer("C", "bob") is Outcome.ALREADY_CLAIMED
    # Now held in memory too: Redis losing the key changes nothing.
    redis_client.delete(f"{prefix}coupon:C:claimants")
    assert other_process.answer("C", "alice") is Outcome.ALREADY_CLAIMED
    assert other_process.answer("C", "dave") is Outcome.SOLD_OUT
    assert ClaimGate(redis_client, prefix, CouponSettings()).answer("C", "dave") is None


def test_claimants_without_the_marker_never_mean_sold_out(
    redis_client: redis.Redis, prefix: str
) -> None:
    gate = ClaimGate(redis_client, prefix, CouponSettings())
    gate.learn_claimants("C", [f"user_{n}" for n in range(100)])
    assert gate.answer("C", "user_100") is None


def test_too_many_claimants_are_not_cached(redis_client: redis.Redis, prefix: str) -> None:
    gate = ClaimGate(redis_client, prefix, CouponSettings(gate_max_claimants=2))
    gate.learn_sold_out("BIG", ["a", "b", "c"])
    gate.learn_sold_out("SMALL", ["a", "b"])
    assert gate.answer("SMALL", "z") is Outcome.SOLD_OUT
    redis_client.delete(f"{prefix}coupon:BIG:claimants")
    assert gate.answer("BIG", "z") is None


def test_memory_keeps_the_most_recent_coupons_within_its_budget(
    redis_client: redis.Redis, prefix: str
) -> None:
    gate = ClaimGate(redis_client, prefix, CouponSettings(gate_max_claimants=3))
    gate.learn_sold_out("OLD", ["a", "b"])
    gate.learn_sold_out("NEW", ["c", "d"])
    redis_client.delete(f"{prefix}coupon:OLD:claimants", f"{prefix}coupon:NEW:claimants")
    assert gate.answer("NEW", "z") is Outcome.SOLD_OUT
    assert gate.answer("OLD", "z") is None


def test_redis_down_means_no_answer_quickly_then_a_retry() -> None:
    gate = ClaimGate(
        fail_fast_client("redis://127.0.0.1:1/0"), "x:", CouponSettings(gate_retry_seconds=0.2)
    )
    started = time.monotonic()
    assert gate.answer("C", "alice") is None
    assert time.monotonic() - started < 0.1  # refused at once, and no retries
    assert not gate.redis_available
    for _ in range(100):
        assert gate.answer("C", "alice") is None  # Redis skipped while it rests
    gate.learn_sold_out("C", ["alice"])  # PostgreSQL's facts still reach memory
    assert gate.answer("C", "alice") is Outcome.ALREADY_CLAIMED
    time.sleep(0.25)
    assert gate.redis_available
