"""``/api/coupons``: create, claim, read (SPEC section 7, tested by an external script)."""

from __future__ import annotations

from urllib.parse import quote

import sqlalchemy as sa
from flask import Blueprint, Response, current_app

from switchyard import tracing
from switchyard.kafka.topics import COUPONS, topic_name
from switchyard.logging import get_logger
from switchyard_api.coupons.claims import ClaimService
from switchyard_api.coupons.gate import ClaimGate
from switchyard_api.coupons.group_commit import BatchFailed
from switchyard_api.coupons.schemas import (
    RESERVED_NAME,
    Claim,
    ClaimCreate,
    Coupon,
    CouponCreate,
    CouponName,
)
from switchyard_api.coupons.store import ClaimRequest, CouponStore, Outcome
from switchyard_api.http.contract import Out, Reply, endpoint
from switchyard_api.http.problems import Problem
from switchyard_api.http.request_context import current_request_id
from switchyard_api.services import ApiServices

log = get_logger(__name__)
coupons = Blueprint("coupons", __name__)
TAGS = ("coupons",)


def _build(services: ApiServices) -> tuple[CouponStore, ClaimService]:
    settings = services.settings
    store = CouponStore(services.engine, topic_name(settings, COUPONS))
    gate = None
    if settings.coupons.strategy == "fast" and settings.coupons.gate:
        gate = ClaimGate(services.redis, settings.redis_key_prefix, settings.coupons)
    return store, ClaimService(store, gate, settings.coupons)


def _parts() -> tuple[CouponStore, ClaimService]:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.part("coupons", _build)


def _claim_request(user_id: str) -> ClaimRequest:
    return ClaimRequest(user_id, current_request_id(), tracing.inject_headers())


def _no_coupon(name: str) -> Problem:
    return Problem(404, f"There is no coupon named {name!r}.", slug="coupon-not-found")


def _refusal(outcome: Outcome, user_id: str, name: str) -> Problem:
    if outcome is Outcome.ALREADY_CLAIMED:
        return Problem(
            409,
            f"User {user_id!r} has already claimed {name!r}.",
            slug="already-claimed",
            routine=True,
        )
    if outcome is Outcome.SOLD_OUT:
        return Problem(
            400,
            f"Coupon {name!r} has no stock left.",
            title="Sold Out",
            slug="sold-out",
            routine=True,
        )
    return _no_coupon(name)


@coupons.errorhandler(sa.exc.DBAPIError)
@coupons.errorhandler(BatchFailed)
def _database_trouble(error: Exception) -> Response:
    log.error("coupon request failed in PostgreSQL", error=str(error))
    # A failed COMMIT may still have committed: a retried claim then answers 409.
    return Problem(
        503,
        "PostgreSQL did not confirm the change; retry the request.",
        slug="database-unavailable",
        headers={"Retry-After": "1"},
    ).to_response()


_UNAVAILABLE = "PostgreSQL did not confirm the change; retry (see Retry-After)"
_NOT_FOUND = "no coupon with this name"


@endpoint(
    coupons,
    "POST",
    "/api/coupons",
    tags=TAGS,
    body=CouponCreate,
    summary="Create a coupon with `amount` in stock; publishes coupon.created",
    responses={
        201: Out(
            "created; Location names it",
            Coupon,
            links={
                "ClaimCoupon": {
                    "operationId": "claim_coupon",
                    "requestBody": {"coupon_name": "$response.body#/name", "user_id": "user_12345"},
                },
                "GetCoupon": {
                    "operationId": "get_coupon",
                    "parameters": {"name": "$response.body#/name"},
                },
            },
            headers={"Location": {"schema": {"type": "string"}}},
        )
    },
    problems={409: "a coupon with this name exists", 503: _UNAVAILABLE},
)
def create_coupon(body: CouponCreate) -> Reply:
    store, _ = _parts()
    if not store.create(body.name, body.amount, current_request_id()):
        raise Problem(409, f"A coupon named {body.name!r} already exists.", slug="coupon-exists")
    coupon = Coupon(name=body.name, amount=body.amount, remaining_amount=body.amount, claimed_by=[])
    return Reply(coupon, 201, {"Location": f"/api/coupons/{quote(body.name, safe='')}"})


@endpoint(
    coupons,
    "POST",
    "/api/coupons/claim",
    tags=TAGS,
    body=ClaimCreate,
    summary="Claim one unit of a coupon's stock for a user; publishes coupon.claimed",
    description="Each user claims each coupon at most once. Under any concurrency, "
    "successful claims = min(stock, distinct claimants). After a 503 the "
    "claim may have gone through: retrying it answers 200 or, if it had, "
    "409.",
    responses={
        200: Out(
            "claimed",
            Claim,
            links={
                "GetCoupon": {
                    "operationId": "get_coupon",
                    "parameters": {"name": "$response.body#/coupon_name"},
                }
            },
        )
    },
    problems={
        400: "no stock left (type /problems/sold-out), or malformed JSON or "
        "invalid fields, each named in `errors`",
        404: _NOT_FOUND,
        409: "this user has already claimed this coupon",
        503: _UNAVAILABLE,
    },
)
def claim_coupon(body: ClaimCreate) -> Claim:
    _, claims = _parts()
    outcome = claims.claim(body.coupon_name, body.user_id, _claim_request)
    if outcome is not Outcome.CLAIMED:
        raise _refusal(outcome, body.user_id, body.coupon_name)
    return Claim(coupon_name=body.coupon_name, user_id=body.user_id)


@endpoint(
    coupons,
    "GET",
    "/api/coupons/<coupon_name:name>",
    tags=TAGS,
    path={"name": CouponName},
    summary="A coupon, its remaining stock and every claimant",
    description="One snapshot: `remaining_amount` = `amount` - len(`claimed_by`); "
    "`claimed_by` lists every claimant in claim order. The name is "
    "URL-encoded in the path.",
    responses={200: Out("the coupon", Coupon)},
    problems={
        404: _NOT_FOUND,
        503: "PostgreSQL did not answer; retry (see Retry-After)",
        405: f"the name `{RESERVED_NAME}`: that path is the claim endpoint's",
    },
)
def get_coupon(name: str) -> Coupon:
    store, _ = _parts()
    coupon = store.get(name)
    if coupon is None:
        raise _no_coupon(name)
    return Coupon.model_validate(coupon)
