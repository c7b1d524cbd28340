"""The gate: answers a claim only from facts PostgreSQL already committed.

Both facts are monotonic, so a cached copy can be incomplete but never wrong:

* "U has claimed C": claims are never deleted. Learnt from every 200 and 409.
* "C is sold out, and these are all its claimants": stock never grows back, and no claim
  succeeds without stock, so once ``remaining_amount`` is 0 the claimant set is final.

Two layers hold them. Each API process keeps the complete claimant sets of sold-out
coupons in memory, so after a sell-out the flood of late claims costs no I/O at all. Redis
shares both facts between processes and machines: one set per coupon of user ids, plus
the empty string (never a valid user id) once the set is complete. The complete set is
written in one MULTI, and Redis evicts or expires a key as a whole, so the marker is never
seen without every member. One SMISMEMBER answers a claim: a member → 409; the marker →
400; otherwise PostgreSQL decides. Facts are written only after the transaction that
proved them committed.

Redis trouble never fails or changes an answer: the Redis layer steps aside for a while
and claims go to PostgreSQL, exactly as without Redis.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from typing import cast

import redis

from switchyard import metrics
from switchyard.config import CouponSettings
from switchyard.logging import get_logger
from switchyard_api.coupons.store import Outcome

log = get_logger(__name__)
COMPLETE = ""
_CHUNK = 10_000  # members per SADD, so no single command gets huge


class ClaimGate:
    def __init__(self, client: redis.Redis, prefix: str, settings: CouponSettings) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = settings.gate_ttl_seconds
        self._retry_seconds = settings.gate_retry_seconds
        self.max_claimants = settings.gate_max_claimants
        self._resting_until = 0.0
        self._mutex = threading.Lock()
        # Sold-out coupon → all its claimants; least recently used first.
        self._sold_out: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._held = 0
        # The flood after a sell-out asks for one coupon over and over: its recency is
        # refreshed (under the mutex) only when another coupon was asked for in between.
        self._latest: str | None = None
        self._hit, self._miss, self._error = (
            metrics.cache_requests_total.labels("coupons", result)
            for result in ("hit", "miss", "error")
        )

    def _key(self, coupon: str) -> str:
        return f"{self._prefix}coupon:{coupon}:claimants"

    @property
    def redis_available(self) -> bool:
        return time.monotonic() >= self._resting_until

    def _rest(self, exc: redis.RedisError) -> None:
        if self.redis_available:
            log.warning(
                "coupon gate: Redis failed; it is skipped for a while",
                error=str(exc),
                retry_in_s=self._retry_seconds,
            )
        self._resting_until = time.monotonic() + self._retry_seconds

    def answer(self, coupon: str, user_id: str) -> Outcome | None:
        """The claim's answer when the facts decide it, else None."""
        # A single dict read is atomic; the sets in it are immutable.
        claimants = self._sold_out.get(coupon)
        if claimants is not None:
            if coupon != self._latest:
                self._refresh(coupon)
            self._hit.inc()
            return Outcome.ALREADY_CLAIMED if user_id in claimants else Outcome.SOLD_OUT
        if not self.redis_available:
            return None
        try:
            claimed, complete = self._client.smismember(self._key(coupon), [user_id, COMPLETE])
            if complete:
                # The shared client returns bytes (no decode_responses).
                members = cast(set[bytes], self._client.smembers(self._key(coupon)))
                # Evicted in between: nothing learnt, and the answer above still holds.
                if COMPLETE.encode() in members:
                    self._remember(coupon, frozenset(m.decode() for m in members if m))
        except redis.RedisError as exc:
            self._rest(exc)
            self._error.inc()
            return None
        outcome = Outcome.ALREADY_CLAIMED if claimed else Outcome.SOLD_OUT if complete else None
        (self._miss if outcome is None else self._hit).inc()
        return outcome

    def _refresh(self, coupon: str) -> None:
        with self._mutex:
            if coupon in self._sold_out:  # evicted meanwhile: nothing to refresh
                self._sold_out.move_to_end(coupon)
            self._latest = coupon

    def learn_claimants(self, coupon: str, user_ids: Collection[str]) -> None:
        """Users PostgreSQL has committed a claim of ``coupon`` for."""
        self._write(coupon, user_ids, complete=False)

    def learn_sold_out(self, coupon: str, claimants: Collection[str]) -> None:
        """Every claimant of ``coupon``, read after its stock reached 0 (and was committed)."""
        self._remember(coupon, frozenset(claimants))
        self._write(coupon, claimants, complete=True)

    def _remember(self, coupon: str, claimants: frozenset[str]) -> None:
        if len(claimants) > self.max_claimants:
            return
        with self._mutex:
            previous = self._sold_out.pop(coupon, None)
            self._held += len(claimants) - (len(previous) if previous is not None else 0)
            self._sold_out[coupon] = claimants
            self._latest = None  # the newcomer is the most recent now
            while self._held > self.max_claimants:
                self._held -= len(self._sold_out.popitem(last=False)[1])

    def _write(self, coupon: str, members: Collection[str], complete: bool) -> None:
        if not self.redis_available or not members:
            return
        key = self._key(coupon)
        ordered = [*members, COMPLETE] if complete else list(members)
        try:
            pipeline = self._client.pipeline(transaction=complete)
            for start in range(0, len(ordered), _CHUNK):
                pipeline.sadd(key, *ordered[start : start + _CHUNK])
            pipeline.expire(key, self._ttl)
            pipeline.execute()
        except redis.RedisError as exc:
            self._rest(exc)
