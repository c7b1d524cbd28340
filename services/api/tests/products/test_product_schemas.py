"""The product body's rules, without servers: each one refused with its field named, and
the image-URL pattern agreeing with the image-worker's URL guard."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from switchyard.fetch.errors import RefusedAddress
from switchyard.fetch.guard import AddressGuard
from switchyard_api.products.schemas import IMAGE_URL_PATTERN, ProductCreate

GOOD: dict[str, Any] = {
    "user_id": 1,
    "product_name": "Walnut desk",
    "product_description": "Solid walnut.",
    "product_images": ["https://images.example.com/desk.jpg"],
    "product_price": 19.99,
}


def _fields(**changes: Any) -> set[str]:
    """The fields a body with ``changes`` is refused on (empty: accepted)."""
    body = {**GOOD, **changes}
    body = {key: value for key, value in body.items() if value is not ...}
    try:
        ProductCreate.model_validate(body)
    except ValidationError as exc:
        return {".".join(str(part) for part in error["loc"][:2]) for error in exc.errors()}
    return set()


@pytest.mark.parametrize(
    ("price", "stored"),
    [
        (19.99, "19.99"),
        (0, "0.00"),
        (0.0, "0.00"),
        (-0.0, "0.00"),
        (2.5, "2.50"),
        (9999999999.99, "9999999999.99"),
        (1e2, "100.00"),
    ],
)
def test_prices_accepted_exactly(price: float, stored: str) -> None:
    product = ProductCreate.model_validate({**GOOD, "product_price": price})
    assert product.product_price == Decimal(stored)
    assert str(product.product_price) == stored


@pytest.mark.parametrize(
    "price",
    [0.1 + 0.2, 1.005, 0.001, -0.01, 10_000_000_000, 9999999999.991, "19.99", True, None, [1]],
)
def test_prices_refused(price: Any) -> None:
    assert _fields(product_price=price) == {"product_price"}


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/a/b.jpg?size=large&x=%20#top",
        "https://EXAMPLE.com:8443/x.png",
        "http://127.0.0.1:8080/img.png",  # refused or not at fetch time (FETCH__ALLOW)
        "http://[::1]/x.png",
        "http://[2001:db8::7]:65535/x",
        "https://xn--bcher-kva.example/b.jpg",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_image_urls_accepted(url: str) -> None:
    assert _fields(product_images=[url]) == set()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x.png",
        "//example.com/x.png",
        "/x.png",
        "example.com/x.png",
        "HTTP://example.com/x.png",  # documented: lowercase scheme
        "http://user:secret@example.com/x.png",
        "http://user@example.com/x.png",
        "http:///x.png",
        "http://exa mple.com/x.png",
        "http://example.com/a b.png",
        "http://example.com/caf\u00e9.png",
        "http://example.com:0/x",
        "http://example.com:65536/x",
        "http://example.com:/x",
        "http://-bad.example/x",
        "http://[::1/x",
        "http://[1:2:3:4:5:6:7:8:9]/x",
        "http://example.com\\@evil.example/",
        "http://example.com/x\n",
        "https://example.com/" + "a" * 2029,
        "",
    ],
)
def test_image_urls_refused(url: str) -> None:
    assert _fields(product_images=[url]) == {"product_images.0"}


def test_image_count_and_duplicates() -> None:
    url = GOOD["product_images"][0]
    assert _fields(product_images=[]) == {"product_images"}
    assert _fields(product_images=[url] * 21) == {"product_images"}
    assert _fields(product_images=[url] * 20) == set()  # duplicates are allowed
    assert _fields(product_images=url) == {"product_images"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"user_id": 0}, "user_id"),
        ({"user_id": 2**31}, "user_id"),
        ({"user_id": "1"}, "user_id"),
        ({"user_id": 1.5}, "user_id"),
        ({"user_id": ...}, "user_id"),
        ({"product_name": ""}, "product_name"),
        ({"product_name": " desk"}, "product_name"),
        ({"product_name": "desk\n"}, "product_name"),
        ({"product_name": "d" * 201}, "product_name"),
        ({"product_name": ...}, "product_name"),
        ({"product_description": "x" * 10_001}, "product_description"),
        ({"product_description": "nul \x00"}, "product_description"),
        ({"product_description": None}, "product_description"),
        ({"product_images": ...}, "product_images"),
        ({"product_price": ...}, "product_price"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_each_field_rule(changes: dict[str, Any], field: str) -> None:
    assert _fields(**changes) == {field}


def test_edges_accepted() -> None:
    assert _fields(user_id=2**31 - 1, product_name="d" * 200) == set()
    assert _fields(user_id=3.0) == set()  # JSON Schema's integer includes 3.0
    assert _fields(product_description="x" * 10_000) == set()
    assert _fields(product_description="") == set()
    body = {key: value for key, value in GOOD.items() if key != "product_description"}
    assert ProductCreate.model_validate(body).product_description == ""


_ANYWHERE = AddressGuard(allow=["0.0.0.0/0", "::/0"])


@settings(max_examples=300, deadline=None)
@given(st.from_regex(IMAGE_URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= 2048))
def test_every_url_the_pattern_admits_passes_the_guards_syntax_rules(url: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert parts.username is None and parts.password is None
    assert parts.port is None or 1 <= parts.port <= 65535
    # RefusedUrl (syntax) fails the test; cloud metadata is refused at fetch time, which is
    # the worker's business.
    with contextlib.suppress(RefusedAddress):
        _ANYWHERE.check_url(url)
