"""Products endpoints over real PostgreSQL (Flask's client, no network)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import hypothesis
import orjson
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from switchyard.config import Settings
from switchyard.events import CloudEvent
from switchyard_api.http.fields import TRIMMED_PATTERN
from switchyard_api.products.schemas import IMAGE_URL_PATTERN

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer test-admin-token-of-the-suite-only-0001"}
URL = "https://images.example.com/desk.jpg"


def _user(client: FlaskClient) -> int:
    response = client.post(
        "/users", json={"name": "Seller", "mobile": "+1 555 0100", "latitude": 1, "longitude": 2}
    )
    assert response.status_code == 201, response.data
    return int(response.get_json()["id"])


@pytest.fixture
def user_id(client: FlaskClient) -> int:
    return _user(client)


def _body(user_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "product_name": f"Desk {uuid.uuid4().hex[:8]}",
        "product_description": "Solid walnut.",
        "product_images": [URL, "http://cdn.example.org/b.png"],
        "product_price": 19.99,
        **changes,
    }


def _outbox(engine: sa.Engine, topic: str, key: str) -> list[sa.Row[Any]]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    "SELECT topic, key, payload, headers FROM outbox "
                    "WHERE topic = :topic AND key = :key"
                ),
                {"topic": topic, "key": key},
            ).all()
        )


def _count(engine: sa.Engine, name: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text("SELECT count(*) FROM products WHERE product_name = :name"),
                {"name": name},
            ).scalar_one()
        )


def test_create_returns_the_product_and_queues_its_event(
    client: FlaskClient, engine: sa.Engine, settings: Settings, user_id: int
) -> None:
    body = _body(user_id)
    response = client.post("/products", json=body, headers={"X-Request-ID": "prod-req-1"})
    assert response.status_code == 201, response.data
    product = response.get_json()
    assert response.headers["Location"] == f"/products/{product['product_id']}"
    assert {key: product[key] for key in body} == body
    assert product["status"] == "pending"
    assert product["compressed_product_images"] == []
    assert product["image_errors"] == product["image_details"] == []
    assert product["processed_at"] is None and product["attempts"] == 0

    topic = f"{settings.kafka.topic_prefix}products"
    [(_, key, payload, headers)] = _outbox(engine, topic, str(product["product_id"]))
    assert key == str(product["product_id"])
    event = CloudEvent.from_json(payload if isinstance(payload, bytes | str) else bytes(payload))
    assert (event.type, event.source, event.subject) == (
        "product.created",
        "/switchyard/api",
        str(product["product_id"]),
    )
    assert event.data == product
    assert headers["x-request-id"] == "prod-req-1"
    assert headers["ce_type"] == "product.created"


def test_get_returns_what_create_returned(client: FlaskClient, user_id: int) -> None:
    created = client.post("/products", json=_body(user_id)).get_json()
    response = client.get(f"/products/{created['product_id']}")
    assert response.status_code == 200
    assert response.get_json() == created


@pytest.mark.parametrize("path", ["/products/999999999", "/products/2147483648", "/products/0"])
def test_unknown_product_is_a_404_problem(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("price", "expected"), [(19.99, 19.99), (0, 0.0), (0.1, 0.1), (9999999999.99, 9999999999.99)]
)
def test_price_round_trips_exactly(
    client: FlaskClient, user_id: int, price: float, expected: float
) -> None:
    created = client.post("/products", json=_body(user_id, product_price=price))
    assert created.status_code == 201, created.data
    read = client.get(f"/products/{created.get_json()['product_id']}")
    for response in (created, read):
        # The JSON text itself: a number spelled exactly as the decimal stored.
        assert f'"product_price":{expected!r}'.encode() in response.data


@pytest.mark.parametrize("price", [0.1 + 0.2, 1.005, -1, "19.99", 10_000_000_000])
def test_bad_prices_are_refused(client: FlaskClient, user_id: int, price: Any) -> None:
    response = client.post("/products", json=_body(user_id, product_price=price))
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == ["product_price"]


def test_unknown_user_is_a_field_error_and_stores_nothing(
    client: FlaskClient, engine: sa.Engine
) -> None:
    body = _body(2**31 - 7)
    response = client.post("/products", json=body)
    assert response.status_code == 400
    problem = response.get_json()
    assert problem["errors"] == [
        {"field": "user_id", "message": f"there is no user with id {2**31 - 7}"}
    ]
    assert _count(engine, body["product_name"]) == 0


def test_user_deleted_before_the_insert_is_the_same_400(
    client: FlaskClient, engine: sa.Engine
) -> None:
    user_id = _user(client)
    assert client.delete(f"/users/{user_id}", headers=ADMIN).status_code == 204
    response = client.post("/products", json=_body(user_id))
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "user_id"


def test_every_bad_field_is_named(client: FlaskClient, user_id: int) -> None:
    response = client.post(
        "/products",
        json={
            "user_id": 0,
            "product_name": " padded",
            "product_images": ["ftp://x.example/a.png", URL],
            "product_price": 1.001,
            "extra": 1,
        },
    )
    assert response.status_code == 400
    fields = {error["field"] for error in response.get_json()["errors"]}
    assert fields == {"user_id", "product_name", "product_images[0]", "product_price", "extra"}


@pytest.mark.parametrize("raw", [b"{", b"", b"[1, 2]", b"null", b'{"user_id": 1,}'])
def test_malformed_json_is_a_400(client: FlaskClient, raw: bytes) -> None:
    response = client.post("/products", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


def test_huge_body_is_a_413(client: FlaskClient, settings: Settings, user_id: int) -> None:
    body = _body(user_id, product_description="x" * settings.api.max_body_bytes)
    response = client.post("/products", data=orjson.dumps(body), content_type="application/json")
    assert response.status_code == 413


def test_a_failed_event_write_rolls_the_product_back(
    client: FlaskClient, engine: sa.Engine, user_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchyard_api.products import store

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(store, "add_event", broken)
    body = _body(user_id)
    response = client.post("/products", json=body)
    assert response.status_code == 500
    # Never a product without its event.
    assert _count(engine, body["product_name"]) == 0


def test_list_pages_newest_first_and_filters_by_user(client: FlaskClient) -> None:
    mine, theirs = _user(client), _user(client)
    created = [
        client.post("/products", json=_body(mine)).get_json()["product_id"] for _ in range(5)
    ]
    other = client.post("/products", json=_body(theirs)).get_json()["product_id"]
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        query = f"/products?user_id={mine}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query).get_json()
        assert len(page["items"]) <= 2
        assert all(item["user_id"] == mine for item in page["items"])
        seen.extend(item["product_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created, reverse=True)
    everyone = client.get("/products?limit=1000").get_json()["items"]
    ids = [item["product_id"] for item in everyone]
    assert other in ids and ids == sorted(ids, reverse=True)
    assert client.get("/products?user_id=2147483646").get_json() == {
        "items": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=x", "user_id=0", "user_id=1.0", "cursor=-1"]
)
def test_bad_list_queries_are_400(client: FlaskClient, query: str) -> None:
    assert client.get(f"/products?{query}").status_code == 400


def test_worker_state_is_shown_and_odd_stored_shapes_never_fail_a_read(
    client: FlaskClient, engine: sa.Engine, user_id: int
) -> None:
    product = client.post("/products", json=_body(user_id)).get_json()
    errors = [
        {
            "index": 1,
            "url": "http://cdn.example.org/b.png",
            "reason": "not_found",
            "message": "404",
        },
        {"index": "one", "extra": True},
        "not an object",
    ]
    details = [
        {"index": 0, "path": "products/1/0.webp", "variant": "resized", "width": 10, "height": 5,
         "bytes_in": 900, "bytes_out": 300},
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE products SET status = 'failed', attempts = 1, processed_at = now(), "
                "compressed_product_images = ARRAY['products/1/0.webp', NULL], "
                "image_errors = CAST(:errors AS jsonb), image_details = CAST(:details AS jsonb) "
                "WHERE product_id = :id"
            ),
            {
                "errors": orjson.dumps(errors).decode(),
                "details": orjson.dumps(details).decode(),
                "id": product["product_id"],
            },
        )
    read = client.get(f"/products/{product['product_id']}")
    assert read.status_code == 200
    shown = read.get_json()
    assert shown["status"] == "failed" and shown["processed_at"]
    assert shown["compressed_product_images"] == ["products/1/0.webp", None]
    assert shown["image_errors"] == [
        errors[0],
        {"index": -1, "url": "", "reason": "unknown", "message": ""},
    ]
    assert shown["image_details"] == details


_NAMES = st.from_regex(TRIMMED_PATTERN, fullmatch=True).filter(lambda name: len(name) <= 200)
_URLS = st.from_regex(IMAGE_URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= 2048)


@hypothesis.settings(
    max_examples=40,
    deadline=None,
    # One client and one seller for every example, on purpose.
    suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.function_scoped_fixture,
    ],
)
@given(
    name=_NAMES,
    description=st.text(max_size=300).filter(lambda text: "\x00" not in text),
    images=st.lists(_URLS, min_size=1, max_size=20),
    cents=st.integers(0, 999_999_999_999),
)
def test_any_schema_valid_body_for_an_existing_user_is_created(
    client: FlaskClient, user_id: int, name: str, description: str, images: list[str], cents: int
) -> None:
    # What the contract test cannot check outside its stateful phase (random user ids).
    price = cents / 100 if cents % 100 else cents // 100
    body = {
        "user_id": user_id,
        "product_name": name,
        "product_description": description,
        "product_images": images,
        "product_price": price,
    }
    response = client.post("/products", json=body)
    assert response.status_code == 201, response.data
    product = response.get_json()
    assert {key: product[key] for key in body} == body
    assert Decimal(repr(product["product_price"])) == Decimal(cents) / 100


def test_a_repeated_list_parameter_is_refused(client: FlaskClient) -> None:
    response = client.get("/products?user_id=1&user_id=2&limit=5")
    assert response.status_code == 400
    assert response.get_json()["errors"] == [{"field": "user_id", "message": "give it once"}]
