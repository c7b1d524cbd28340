"""Users endpoints over real PostgreSQL and Redis (Flask's client, no network)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask.testing import FlaskClient

from switchyard.config import Settings

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer test-admin-token-of-the-suite-only-0001"}
ADA = {"name": "Ada Lovelace", "mobile": "+44 20 7946 0000", "latitude": 51.5, "longitude": -0.12}


def _create(client: FlaskClient, **changes: Any) -> dict[str, Any]:
    response = client.post("/users", json={**ADA, **changes})
    assert response.status_code == 201, response.data
    return response.get_json()  # type: ignore[no-any-return]


def test_create_read_miss_then_hit(client: FlaskClient) -> None:
    user = _create(client)
    assert user["name"] == "Ada Lovelace" and isinstance(user["id"], int)
    first = client.get(f"/users/{user['id']}")
    second = client.get(f"/users/{user['id']}")
    assert (first.status_code, first.headers["X-Cache"]) == (200, "MISS")
    assert (second.status_code, second.headers["X-Cache"]) == (200, "HIT")
    assert first.get_json() == second.get_json() == user


def test_read_after_write_never_sees_the_old_value(client: FlaskClient) -> None:
    user = _create(client)
    assert client.get(f"/users/{user['id']}").status_code == 200  # now cached
    patched = client.patch(f"/users/{user['id']}", json={"name": "Ada King"})
    assert patched.status_code == 200 and patched.get_json()["name"] == "Ada King"
    after = client.get(f"/users/{user['id']}")
    assert after.headers["X-Cache"] == "MISS"
    assert after.get_json()["name"] == "Ada King"
    assert after.get_json()["updated_at"] >= user["updated_at"]


def test_delete_needs_the_admin_token(client: FlaskClient) -> None:
    user = _create(client)
    client.get(f"/users/{user['id']}")
    refused = client.delete(f"/users/{user['id']}")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.delete(f"/users/{user['id']}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.delete(f"/users/{user['id']}", headers=ADMIN).status_code == 204
    gone = client.get(f"/users/{user['id']}")
    assert gone.status_code == 404
    assert gone.content_type == "application/problem+json"
    assert client.delete(f"/users/{user['id']}", headers=ADMIN).status_code == 404


def test_list_pages_through_every_user(client: FlaskClient) -> None:
    created = {_create(client, name=f"pager {i}")["id"] for i in range(7)}
    seen: list[int] = []
    cursor = None
    for _ in range(100):
        query = f"/users?limit=3{'&cursor=' + cursor if cursor else ''}"
        page = client.get(query).get_json()
        assert len(page["items"]) <= 3
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert created <= set(seen)
    assert seen == sorted(seen) and len(seen) == len(set(seen))


def test_stale_fill_racing_a_write_is_dropped(
    client: FlaskClient, settings: Settings, redis_client: redis.Redis
) -> None:
    from flask import current_app

    user = _create(client)
    with client.application.app_context():
        services = current_app.extensions["switchyard"]
        from switchyard_api.users.routes import _build

        store, cache = services.part("users", _build)
        # A reader misses and loads the row ...
        cached, generation = cache.get(user["id"])
        assert cached is None
        stale = store.get(user["id"])
        # ... a writer commits and invalidates before the reader fills ...
        assert client.patch(f"/users/{user['id']}", json={"name": "New"}).status_code == 200
        import orjson

        cache.fill(user["id"], generation, orjson.dumps(stale))
    # ... so the stale copy never lands and the next read sees the new name.
    assert redis_client.get(f"{settings.redis_key_prefix}user:{user['id']}") is None
    assert client.get(f"/users/{user['id']}").get_json()["name"] == "New"


def test_every_change_is_in_the_outbox_with_the_request_id(
    client: FlaskClient, engine: sa.Engine, settings: Settings
) -> None:
    user = _create(client)
    client.patch(
        f"/users/{user['id']}", json={"latitude": 10.0}, headers={"X-Request-ID": "trace-me-1"}
    )
    client.delete(f"/users/{user['id']}", headers=ADMIN)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT headers->>'ce_type', headers->>'x-request-id', key FROM outbox "
                "WHERE topic = :topic AND key = :key ORDER BY id"
            ),
            # Other topics' keys are ids too (a product can share this user's number).
            {"topic": f"{settings.kafka.topic_prefix}users", "key": str(user["id"])},
        ).all()
    assert [r[0] for r in rows] == ["user.created", "user.updated", "user.deleted"]
    assert rows[1][1] == "trace-me-1"


BAD_REQUESTS = [
    ("post", "/users", "{not json", 400),
    ("post", "/users", "", 400),
    ("post", "/users", "[]", 400),
    ("post", "/users", '{"name": "x"}', 400),
    ("post", "/users", '{"name": 5, "mobile": "123456", "latitude": 0, "longitude": 0}', 400),
    ("post", "/users", '{"name": "x", "mobile": "123456", "latitude": 91, "longitude": 0}', 400),
    ("post", "/users", '{"name": "x", "mobile": "123456", "latitude": 0, "longitude": "0"}', 400),
    ("post", "/users", '{"name": "x", "mobile": "12", "latitude": 0, "longitude": 0}', 400),
    (
        "post",
        "/users",
        '{"name": "x", "mobile": "123456", "latitude": 0, "longitude": 0, "admin": true}',
        400,
    ),
    (
        "post",
        "/users",
        '{"name": "' + "x" * 201 + '", "mobile": "123456", "latitude": 0, "longitude": 0}',
        400,
    ),
    ("post", "/users", "x" * 2_000_000, 413),
    ("get", "/users/999999999", None, 404),
    ("get", "/users/99999999999999999999", None, 404),
    ("get", "/users/-1", None, 404),
    ("get", "/users/abc", None, 404),
    ("get", "/users?limit=0", None, 400),
    ("get", "/users?limit=1001", None, 400),
    ("get", "/users?limit=ten", None, 400),
    ("get", "/users?cursor=%%%", None, 400),
    ("get", "/users?cursor=eyJhZnRlciI6ICJ4In0", None, 400),
    ("patch", "/users/1", "{}", 400),
    ("patch", "/users/1", '{"name": null}', 400),
    ("patch", "/users/1", '{"latitude": "north"}', 400),
    ("patch", "/users/999999999", '{"name": "x"}', 404),
    ("patch", "/users/99999999999999999999", '{"name": "x"}', 404),
    ("put", "/users/1", "{}", 405),
    ("delete", "/users", None, 405),
    ("get", "/nowhere", None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
def test_bad_input_gets_a_problem_never_a_500(
    client: FlaskClient, method: str, path: str, body: str | None, status: int
) -> None:
    response = getattr(client, method)(path, data=body, headers=ADMIN)
    assert response.status_code == status, response.data
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= set(problem)
    assert response.headers["X-Request-ID"]
    if status == 400 and "errors" in problem:
        assert all(set(e) == {"field", "message"} for e in problem["errors"])


def test_invalid_fields_are_all_named(client: FlaskClient) -> None:
    response = client.post("/users", json={"name": "", "latitude": 100, "extra": 1})
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert fields == {"name", "mobile", "latitude", "longitude", "extra"}


def test_request_id_is_echoed_or_made(client: FlaskClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces"
    assert len(made.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": " Grace", "mobile": "123456", "latitude": 0, "longitude": 0}, "name"),
        ({"name": "Grace ", "mobile": "123456", "latitude": 0, "longitude": 0}, "name"),
        ({"name": "Gr\u0007ce", "mobile": "123456", "latitude": 0, "longitude": 0}, "name"),
        ({"name": "Grace", "mobile": " 123456", "latitude": 0, "longitude": 0}, "mobile"),
    ],
)
def test_nothing_is_stripped_what_the_schema_refuses_is_refused(
    client: FlaskClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/users", json=body)
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


def test_a_patch_null_is_named(client: FlaskClient) -> None:
    response = client.patch("/users/1", json={"name": None, "latitude": 1})
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == ["name"]


@pytest.mark.parametrize("path", ["/users", "/logs", "/health"])
def test_a_repeated_list_parameter_is_refused_everywhere(client: FlaskClient, path: str) -> None:
    response = client.get(f"{path}?limit=1&limit=2")
    assert response.status_code == 400
    assert response.get_json()["errors"] == [{"field": "limit", "message": "give it once"}]
