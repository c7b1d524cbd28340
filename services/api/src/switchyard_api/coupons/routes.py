"""``/api/coupons``: create, claim, read (SPEC section 7, tested by an external script)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, current_app

from switchyard import tracing
from switchyard.kafka.topics import COUPONS, topic_name
from switchyard.logging import get_logger
from switchyard_api.coupons.claims import ClaimService
from switchyard_api.coupons.gate import ClaimGate
from switchyard_api.coupons.group_commit import BatchFailed
from switchyard_api.coupons.schemas import ClaimCreate, CouponCreate, is_coupon_name
from switchyard_api.coupons.store import ClaimRequest, CouponStore, Outcome
from switchyard_api.http.problems import Problem
from switchyard_api.http.request_context import current_request_id
from switchyard_api.http.responses import json_response
from switchyard_api.http.validation import parse_body
from switchyard_api.services import ApiServices

log = get_logger(__name__)
coupons = Blueprint("coupons", __name__)


def _build(services: ApiServices) -> tuple[CouponStore, ClaimService]:
    settings = services.settings
    store = CouponStore(services.engine, topic_name(settings, COUPONS))
    gate = None
    if settings.coupons.strategy == "fast" and settings.coupons.gate:
        gate = ClaimGate(services.redis, settings.redis_key_prefix,
                         settings.coupons)
    return store, ClaimService(store, gate, settings.coupons)


def _parts() -> tuple[CouponStore, ClaimService]:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.part("coupons", _build)


def _no_coupon(name: str) -> Problem:
    return Problem(404, f"There is no coupon named {name!r}.", slug="coupon-not-found")


def _refusal(outcome: Outcome, user_id: str, name: str) -> Problem:
    if outcome is Outcome.ALREADY_CLAIMED:
        return Problem(409, f"User {user_id!r} has already claimed {name!r}.",
                       slug="already-claimed")
    if outcome is Outcome.SOLD_OUT:
        return Problem(400, f"Coupon {name!r} has no stock left.", title="Sold Out",
                       slug="sold-out")
    return _no_coupon(name)


@coupons.errorhandler(sa.exc.DBAPIError)
@coupons.errorhandler(BatchFailed)
def _database_trouble(error: Exception) -> Response:
    log.error("coupon request failed in PostgreSQL", error=str(error))
    # A failed COMMIT may still have committed: a retried claim then answers 409.
    return Problem(503, "PostgreSQL did not confirm the change; retry the request.",
                   slug="database-unavailable", headers={"Retry-After": "1"}).to_response()


@coupons.post("/api/coupons")
def create_coupon() -> Response:
    body = parse_body(CouponCreate)
    store, _ = _parts()
    if not store.create(body.name, body.amount, current_request_id()):
        raise Problem(409, f"A coupon named {body.name!r} already exists.", slug="coupon-exists")
    coupon = {"name": body.name, "amount": body.amount, "remaining_amount": body.amount,
              "claimed_by": []}
    return json_response(coupon, 201, {"Location": f"/api/coupons/{body.name}"})


@coupons.post("/api/coupons/claim")
def claim_coupon() -> Response:
    body = parse_body(ClaimCreate)
    _, claims = _parts()
    request = ClaimRequest(body.user_id, current_request_id(), tracing.inject_headers())
    outcome = claims.claim(body.coupon_name, request)
    if outcome is not Outcome.CLAIMED:
        raise _refusal(outcome, body.user_id, body.coupon_name)
    return json_response({"coupon_name": body.coupon_name, "user_id": body.user_id})


@coupons.get("/api/coupons/<name>")
def get_coupon(name: str) -> Response:
    store, _ = _parts()
    # A name that fails validation cannot have been created (and a NUL would upset libpq).
    coupon = store.get(name) if is_coupon_name(name) else None
    if coupon is None:
        raise _no_coupon(name)
    return json_response(coupon)
