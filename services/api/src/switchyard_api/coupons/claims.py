"""Taking a claim, by the strategy ``COUPONS__STRATEGY`` names (see DESIGN.md).

``fast`` asks the gate (gate.py) first, then joins the coupon's group commit and teaches
the gate what each committed batch proved. The others are the plain PostgreSQL strategies
it is measured against. Whatever the strategy, each answer is one PostgreSQL itself would
give for some serial order of the claims.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from switchyard.config import CouponSettings
from switchyard.logging import get_logger
from switchyard_api.coupons.gate import ClaimGate
from switchyard_api.coupons.group_commit import GroupCommit
from switchyard_api.coupons.store import BatchResult, ClaimRequest, CouponStore, Outcome

log = get_logger(__name__)
_LEARNT = (Outcome.CLAIMED, Outcome.ALREADY_CLAIMED)


class ClaimService:
    def __init__(
        self, store: CouponStore, gate: ClaimGate | None, settings: CouponSettings
    ) -> None:
        self._store = store
        self._gate = gate
        self._strategy = settings.strategy
        self._group: GroupCommit[ClaimRequest, Outcome] = GroupCommit(
            self._run_batch, settings.max_batch, "coupons.claims"
        )

    def claim(self, coupon: str, user_id: str, request: Callable[[str], ClaimRequest]) -> Outcome:
        """``request`` builds the claim's write context (request id, trace headers): only
        a claim that goes to PostgreSQL needs it, not one the gate answers."""
        if self._strategy == "for_update":
            return self._store.claim_for_update(coupon, request(user_id))
        if self._strategy == "conditional":
            return self._store.claim_conditional(coupon, request(user_id))
        known = self._gate.answer(coupon, user_id) if self._gate else None
        return known or self._group.submit(coupon, request(user_id))

    def _run_batch(self, coupon: str, requests: list[ClaimRequest]) -> list[Outcome]:
        result = self._store.claim_batch(coupon, requests)
        if self._gate is not None:
            self._teach(self._gate, coupon, requests, result)
        return result.outcomes

    def _teach(
        self, gate: ClaimGate, coupon: str, requests: list[ClaimRequest], result: BatchResult
    ) -> None:
        """Give the gate what the committed batch proved; this can fail no answer."""
        learnt = [
            request.user_id
            for request, outcome in zip(requests, result.outcomes, strict=True)
            if outcome in _LEARNT
        ]
        if learnt:
            gate.learn_claimants(coupon, learnt)
        if result.sold_out and result.amount <= gate.max_claimants:
            try:
                claimants = self._store.claimants(coupon)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("sold-out coupon not cached", coupon=coupon, error=str(exc))
                return
            gate.learn_sold_out(coupon, claimants)
