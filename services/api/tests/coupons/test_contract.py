"""SPEC section 7 over real HTTP, status by status, for every claim strategy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Api

pytestmark = pytest.mark.integration


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None, fields: set[str] | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["X-Request-ID"]
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status and problem["detail"]
    if slug is not None:
        assert problem["type"] == f"/problems/{slug}"
    if fields is not None:
        assert {error["field"] for error in problem["errors"]} == fields
        assert all(error["message"] for error in problem["errors"])
    return problem


def test_create_then_read(api: Api) -> None:
    name = f"PROMO_SUPER_{api.strategy}"
    response = api.call(
        "POST", "/api/coupons", {"name": name, "amount": 100}, headers={"X-Request-ID": "create-1"}
    )
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == "create-1"
    assert response.headers["Location"] == f"/api/coupons/{name}"
    expected = {"name": name, "amount": 100, "remaining_amount": 100, "claimed_by": []}
    assert response.json() == expected
    assert api.coupon(name) == expected


def test_taken_name_is_409(api: Api) -> None:
    name = api.create(3)
    response = api.call("POST", "/api/coupons", {"name": name, "amount": 7})
    assert_problem(response, 409, "coupon-exists")
    assert api.coupon(name)["amount"] == 3


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (b'{"name": "X", "amount": ', None),
        (b"", None),
        (b"[1, 2]", {"body"}),
        (b"{}", {"name", "amount"}),
        (b'{"name": "X"}', {"amount"}),
        (b'{"amount": 5}', {"name"}),
        (b'{"name": "X", "amount": "100"}', {"amount"}),
        (b'{"name": "X", "amount": 1.5}', {"amount"}),
        (b'{"name": "X", "amount": true}', {"amount"}),
        (b'{"name": "X", "amount": null}', {"amount"}),
        (b'{"name": 5, "amount": 5}', {"name"}),
        (b'{"name": "X", "amount": 0}', {"amount"}),
        (b'{"name": "X", "amount": -3}', {"amount"}),
        (b'{"name": "X", "amount": 2147483648}', {"amount"}),
        (b'{"name": "X", "amount": 1e10}', {"amount"}),
        (b'{"name": "", "amount": 5}', {"name"}),
        (b'{"name": " leading space", "amount": 5}', {"name"}),
        (b'{"name": "trailing space ", "amount": 5}', {"name"}),
        (b'{"name": "tab\\there", "amount": 5}', {"name"}),
        (b'{"name": "nul\\u0000", "amount": 5}', {"name"}),
        (b'{"name": "claim", "amount": 5}', {"name"}),
        (b'{"name": "' + b"x" * 256 + b'", "amount": 5}', {"name"}),
        (b'{"name": "X", "amount": 5, "stock": 5}', {"stock"}),
        (b'{"name": "", "amount": 0}', {"name", "amount"}),
    ],
    ids=lambda value: value.decode()[:40] if isinstance(value, bytes) else None,
)
def test_invalid_coupon_body_is_400(api: Api, raw: bytes, fields: set[str] | None) -> None:
    response = api.call("POST", "/api/coupons", raw=raw)
    assert_problem(response, 400, "malformed-json" if fields is None else "invalid-fields", fields)


def test_claim_succeeds_once_then_409(api: Api) -> None:
    name = api.create(100)
    response = api.call(
        "POST", "/api/coupons/claim", {"user_id": "user_12345", "coupon_name": name}
    )
    assert response.status_code == 200
    assert response.json() == {"coupon_name": name, "user_id": "user_12345"}
    again = api.call("POST", "/api/coupons/claim", {"user_id": "user_12345", "coupon_name": name})
    assert_problem(again, 409, "already-claimed")
    # The same user may claim another coupon.
    assert api.claim("user_12345", api.create(1)) == 200
    assert api.coupon(name) == {
        "name": name,
        "amount": 100,
        "remaining_amount": 99,
        "claimed_by": ["user_12345"],
    }


def test_no_stock_is_400_and_a_repeat_stays_409(api: Api) -> None:
    name = api.create(1)
    assert api.claim("first", name) == 200
    response = api.call("POST", "/api/coupons/claim", {"user_id": "second", "coupon_name": name})
    assert_problem(response, 400, "sold-out")
    # Sold out, yet this user did claim it: the more specific answer wins, every time.
    for _ in range(3):
        assert api.claim("first", name) == 409
        assert api.claim("second", name) == 400
    assert api.coupon(name)["remaining_amount"] == 0


def test_unknown_coupon_is_404(api: Api) -> None:
    response = api.call(
        "POST", "/api/coupons/claim", {"user_id": "u1", "coupon_name": f"NOPE_{api.strategy}"}
    )
    assert_problem(response, 404, "coupon-not-found")
    assert_problem(api.call("GET", f"/api/coupons/NOPE_{api.strategy}"), 404)
    # Names that could never be created are unknown too, not errors.
    for path in ("/api/coupons/no%20such", "/api/coupons/x%00y", "/api/coupons/" + "x" * 256):
        assert_problem(api.call("GET", path), 404)


@pytest.mark.parametrize("name", ["BLACK FRIDAY 50%", "PROMO.2026", "a/b", "Ünï cødé ✓", "x" * 255])
def test_any_printable_name_works_url_encoded(api: Api, name: str) -> None:
    name = f"{name[:240]}{api.strategy}"
    response = api.call("POST", "/api/coupons", {"name": name, "amount": 2_147_483_647})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/api/coupons/{quote(name, safe='')}"
    assert api.claim("user_1", name) == 200
    assert api.call("GET", response.headers["Location"]).json() == {
        "name": name,
        "amount": 2_147_483_647,
        "remaining_amount": 2_147_483_646,
        "claimed_by": ["user_1"],
    }


def test_an_integral_amount_may_be_written_as_a_float(api: Api) -> None:
    name = f"FLOAT_{api.strategy}"
    response = api.call("POST", "/api/coupons", raw=f'{{"name": "{name}", "amount": 3.0}}'.encode())
    assert response.status_code in (201, 409) and api.coupon(name)["amount"] == 3


def test_get_on_the_claim_path_is_405_naming_only_post(api: Api) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = api.call(method, "/api/coupons/claim")
        assert_problem(response, 405, None)
        assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (b'{"user_id": "u1", "coupon_name": ', None),
        (b"{}", {"user_id", "coupon_name"}),
        (b'{"coupon_name": "X"}', {"user_id"}),
        (b'{"user_id": "u1"}', {"coupon_name"}),
        (b'{"user_id": 12345, "coupon_name": "X"}', {"user_id"}),
        (b'{"user_id": "", "coupon_name": "X"}', {"user_id"}),
        (b'{"user_id": " u1", "coupon_name": "X"}', {"user_id"}),
        (b'{"user_id": "u\\u0000", "coupon_name": "X"}', {"user_id"}),
        (b'{"user_id": "' + b"u" * 129 + b'", "coupon_name": "X"}', {"user_id"}),
        (b'{"user_id": "u1", "coupon_name": ["X"]}', {"coupon_name"}),
        (b'{"user_id": "u1", "coupon_name": "a\\u007fb"}', {"coupon_name"}),
        (b'{"user_id": "u1 ", "coupon_name": "X"}', {"user_id"}),
        (b'{"user_id": "u1", "coupon_name": "X", "extra": 1}', {"extra"}),
    ],
    ids=lambda value: value.decode()[:40] if isinstance(value, bytes) else None,
)
def test_invalid_claim_body_is_400(api: Api, raw: bytes, fields: set[str] | None) -> None:
    response = api.call("POST", "/api/coupons/claim", raw=raw)
    assert_problem(response, 400, "malformed-json" if fields is None else "invalid-fields", fields)


def test_user_ids_are_taken_as_given(api: Api) -> None:
    name = api.create(3)
    for user in ("Ünïcødé user", "user_1", "USER_1"):
        assert api.claim(user, name) == 200
    assert api.coupon(name)["claimed_by"] == ["Ünïcødé user", "user_1", "USER_1"]
