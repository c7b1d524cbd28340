"""The coupons part of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from switchyard_api.coupons.schemas import ClaimCreate, ClaimOut, CouponCreate, CouponOut
from switchyard_api.openapi_parts import json_content, problem_response, ref, schema_of

_INVALID = problem_response(
    "malformed JSON, or invalid fields (each named in `errors`); extra fields are refused")
_UNAVAILABLE = {**problem_response("PostgreSQL did not confirm the change; retry"),
                "headers": {"Retry-After": {"schema": {"type": "integer"}}}}

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/coupons": {
            "post": {
                "summary": "Create a coupon with `amount` in stock; publishes coupon.created",
                "tags": ["coupons"],
                "requestBody": {"required": True, "content": json_content(ref("CouponCreate"))},
                "responses": {
                    "201": {"description": "created; Location names it",
                            "content": json_content(ref("Coupon"))},
                    "400": _INVALID,
                    "409": problem_response("a coupon with this name exists"),
                    "413": problem_response("body over the limit"),
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/api/coupons/claim": {
            "post": {
                "summary": "Claim one unit of a coupon's stock for a user; publishes "
                           "coupon.claimed",
                "description": "Each user claims each coupon at most once. Under any "
                               "concurrency, successful claims = min(stock, distinct "
                               "claimants). After a 503 the claim may have gone through: "
                               "retrying it answers 200 or, if it had, 409.",
                "tags": ["coupons"],
                "requestBody": {"required": True, "content": json_content(ref("ClaimCreate"))},
                "responses": {
                    "200": {"description": "claimed", "content": json_content(ref("Claim"))},
                    "400": problem_response("no stock left (type /problems/sold-out), or "
                                            "malformed JSON or invalid fields"),
                    "404": problem_response("no coupon with this name"),
                    "409": problem_response("this user has already claimed this coupon"),
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/api/coupons/{name}": {
            "get": {
                "summary": "A coupon, its remaining stock and every claimant",
                "description": "One snapshot: `remaining_amount` = `amount` - "
                               "len(`claimed_by`). `claimed_by` lists every claimant in "
                               "claim order, so `amount` is capped at 1,000,000.",
                "tags": ["coupons"],
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the coupon", "content": json_content(ref("Coupon"))},
                    "404": problem_response("no coupon with this name"),
                },
            },
        },
    },
    "schemas": {
        "CouponCreate": schema_of(CouponCreate),
        "ClaimCreate": schema_of(ClaimCreate),
        "Coupon": schema_of(CouponOut, "serialization"),
        "Claim": schema_of(ClaimOut, "serialization"),
    },
}
