"""Coupons and claims in PostgreSQL, the source of truth; each claim commits with its event.

A claim takes the coupon row's lock before it reads anything, so the claims of one
coupon, from any process, run one after the other while other coupons go on. A READ
COMMITTED statement that starts after the lock was granted sees every earlier claim,
which makes the duplicate check and the stock check exact. Three ways to take a claim,
one per ``COUPONS__STRATEGY`` (DESIGN.md compares them):

* ``claim_for_update``: the textbook transaction, one claim, statements from the client.
* ``claim_conditional``: insert the claim, then ``UPDATE ... WHERE remaining_amount > 0``
  (the lock comes last here; the unique pair and the condition do the checking).
* ``claim_batch``: many claims in one call of ``claim_coupon_batch()`` (migration 0002),
  answered exactly as ``claim_for_update`` would answer them one by one, in order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from switchyard.db.models.coupons import Claim, Coupon
from switchyard.events import REQUEST_ID_HEADER, TYPE_HEADER, CloudEvent
from switchyard.outbox import add_event
from switchyard.outbox.store import NOTIFY_CHANNEL

coupons = cast(sa.Table, Coupon.__table__)
claims = cast(sa.Table, Claim.__table__)
SOURCE = "/switchyard/api"
_FOREIGN_KEY_VIOLATION = "23503"
_CLAIM_BATCH = sa.text(
    "SELECT o_outcomes, o_amount, o_remaining FROM claim_coupon_batch(:coupon, :user_ids,"
    " :event_ids, :payloads, CAST(:headers AS jsonb[]), :topic, :channel)"
)


class Outcome(enum.Enum):
    """A claim's answer; the value is its HTTP status."""

    CLAIMED = 200
    SOLD_OUT = 400
    NO_COUPON = 404
    ALREADY_CLAIMED = 409


@dataclass(frozen=True)
class ClaimRequest:
    user_id: str
    request_id: str | None = None
    # The request's trace context: its event may be written by another thread's batch.
    trace_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[Outcome]
    amount: int = 0
    remaining_amount: int = 0

    @property
    def sold_out(self) -> bool:
        return self.amount > 0 and self.remaining_amount == 0


def _claimed(name: str, user_id: str) -> CloudEvent:
    return CloudEvent(
        type="coupon.claimed",
        source=SOURCE,
        subject=name,
        data={"coupon_name": name, "user_id": user_id},
    )


class CouponStore:
    def __init__(self, engine: sa.Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic

    def create(self, name: str, amount: int, request_id: str | None) -> bool:
        """False when the name is taken (coupons are never deleted, so it stays taken)."""
        with self.engine.begin() as connection:
            created = connection.execute(
                insert(coupons)
                .values(name=name, amount=amount, remaining_amount=amount)
                .on_conflict_do_nothing()
                .returning(coupons.c.name)
            ).first()
            if created is None:
                return False
            event = CloudEvent(
                type="coupon.created",
                source=SOURCE,
                subject=name,
                data={"name": name, "amount": amount},
            )
            add_event(connection, self.topic, event, key=name, request_id=request_id)
        return True

    def get(self, name: str) -> dict[str, Any] | None:
        # One statement, one snapshot: claimed_by always agrees with remaining_amount.
        with self.engine.connect() as connection:
            row = (
                connection.execute(
                    sa.text(
                        "SELECT name, amount, remaining_amount, ARRAY(SELECT user_id FROM claims"
                        " WHERE coupon_name = coupons.name ORDER BY id) AS claimed_by"
                        " FROM coupons WHERE name = :name"
                    ),
                    {"name": name},
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def claimants(self, name: str) -> list[str]:
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(claims.c.user_id).where(claims.c.coupon_name == name)
                ).scalars()
            )

    def claim_for_update(self, name: str, request: ClaimRequest) -> Outcome:
        with self.engine.begin() as connection:
            remaining = connection.execute(
                sa.select(coupons.c.remaining_amount)
                .where(coupons.c.name == name)
                .with_for_update()
            ).scalar()
            if remaining is None:
                return Outcome.NO_COUPON
            if connection.execute(
                sa.select(claims.c.id).where(
                    claims.c.coupon_name == name, claims.c.user_id == request.user_id
                )
            ).first():
                return Outcome.ALREADY_CLAIMED
            if remaining == 0:
                return Outcome.SOLD_OUT
            connection.execute(sa.insert(claims).values(user_id=request.user_id, coupon_name=name))
            connection.execute(
                sa.update(coupons)
                .where(coupons.c.name == name)
                .values(remaining_amount=coupons.c.remaining_amount - 1)
            )
            add_event(
                connection,
                self.topic,
                _claimed(name, request.user_id),
                key=name,
                request_id=request.request_id,
            )
        return Outcome.CLAIMED

    def claim_conditional(self, name: str, request: ClaimRequest) -> Outcome:
        """The unique pair turns a repeat into a no-op insert (a concurrent repeat waits for
        the first one's transaction); the row lock is held from the UPDATE to COMMIT."""
        with self.engine.connect() as connection, connection.begin() as transaction:
            try:
                inserted = connection.execute(
                    insert(claims)
                    .values(user_id=request.user_id, coupon_name=name)
                    .on_conflict_do_nothing()
                    .returning(claims.c.id)
                ).first()
            except sa.exc.IntegrityError as exc:
                if getattr(exc.orig, "pgcode", None) != _FOREIGN_KEY_VIOLATION:
                    raise
                transaction.rollback()
                return Outcome.NO_COUPON
            taken = (
                inserted is not None
                and connection.execute(
                    sa.update(coupons)
                    .where(coupons.c.name == name, coupons.c.remaining_amount > 0)
                    .values(remaining_amount=coupons.c.remaining_amount - 1)
                    .returning(coupons.c.name)
                ).first()
                is not None
            )
            if not taken:
                transaction.rollback()  # a sold-out claim's row goes with it
                return Outcome.ALREADY_CLAIMED if inserted is None else Outcome.SOLD_OUT
            add_event(
                connection,
                self.topic,
                _claimed(name, request.user_id),
                key=name,
                request_id=request.request_id,
            )
        return Outcome.CLAIMED

    def claim_batch(self, name: str, requests: Sequence[ClaimRequest]) -> BatchResult:
        """Answer ``requests`` in order, in one autocommitted statement (see migration 0002).

        Every request brings its ready-made event; only the granted ones are written.
        """
        events = [_claimed(name, request.user_id) for request in requests]
        headers = []
        for event, request in zip(events, requests, strict=True):
            # The headers add_event writes, with each request's own id and trace context.
            header = {TYPE_HEADER: event.type, **request.trace_headers}
            if request.request_id:
                header[REQUEST_ID_HEADER] = request.request_id
            headers.append(orjson.dumps(header).decode())
        autocommit = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with autocommit as connection:
            row = connection.execute(
                _CLAIM_BATCH,
                {
                    "coupon": name,
                    "user_ids": [request.user_id for request in requests],
                    "event_ids": [event.id for event in events],
                    "payloads": [event.to_json() for event in events],
                    "headers": headers,
                    "topic": self.topic,
                    "channel": NOTIFY_CHANNEL,
                },
            ).one()
        return BatchResult(
            [Outcome(status) for status in row.o_outcomes], row.o_amount or 0, row.o_remaining or 0
        )
