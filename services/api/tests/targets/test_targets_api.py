"""``/targets`` over real PostgreSQL: register, read, change, delete; every bad field named;
409 for a taken name; the admin token on changes; a notice to the checker on each write;
503 when PostgreSQL is gone."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from switchyard.config import Settings
from switchyard.targets.records import NOTIFY_CHANNEL

from .conftest import ADMIN, register, unique_name

pytestmark = pytest.mark.integration


def _fields(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.data
    assert response.content_type == "application/problem+json"
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def test_register_then_read_with_defaults(client: FlaskClient) -> None:
    name = unique_name()
    response = client.post("/targets", json={"name": name, "url": "http://127.0.0.1:9/h"})
    assert response.status_code == 201
    created = response.get_json()
    assert response.headers["Location"] == f"/targets/{created['id']}"
    assert created["name"] == name
    assert created["interval_seconds"] == 30
    assert created["timeout_seconds"] == 5
    assert created["expected_status"] is None
    assert (created["failures_to_down"], created["successes_to_up"]) == (3, 2)
    assert created["status"] == "unknown"
    assert created["uptime_24h"] is None
    assert created["last_checked_at"] is None and created["incident_id"] is None
    fetched = client.get(response.headers["Location"]).get_json()
    assert fetched == created


def test_the_default_timeout_never_exceeds_a_short_interval(client: FlaskClient) -> None:
    target = register(client, interval_seconds=1)
    assert target["timeout_seconds"] == 1
    target = register(client, interval_seconds=3, timeout_seconds=2.5, expected_status=204)
    assert (target["timeout_seconds"], target["expected_status"]) == (2.5, 204)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/health?deep=1",
        "https://api.internal/",
        "https://example.com",
        "http://[::1]:9000/x",
        "tcp://db.internal:5432",
        "tcp://10.0.0.7:1",
        "tcp://[fe80::1]:65535",
    ],
)
def test_accepted_urls(client: FlaskClient, url: str) -> None:
    assert register(client, url=url)["url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "tcp://db.internal",  # no port
        "tcp://db.internal:",  # empty port
        "tcp://db.internal:5432/",  # a path
        "tcp://db.internal:0",
        "tcp://db.internal:65536",
        "tcp://:5432",  # no host
        "http://:80/",
        "http:///path",
        "http://example.com:99999/",
        "ftp://example.com/",
        "HTTP://example.com/",
        "https://user:secret@example.com/",
        "http://exa mple.com/",
        "http://example.com/a b",
        "example.com",
        "",
    ],
)
def test_refused_urls_name_the_field(client: FlaskClient, url: str) -> None:
    errors = _fields(client.post("/targets", json={"name": unique_name(), "url": url}))
    assert list(errors) == ["url"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"interval_seconds": 10, "timeout_seconds": 10.5}, "timeout_seconds"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": 86401}, "interval_seconds"),
        ({"interval_seconds": "30"}, "interval_seconds"),
        ({"interval_seconds": 1.5}, "interval_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 300.5, "interval_seconds": 600}, "timeout_seconds"),
        ({"timeout_seconds": True}, "timeout_seconds"),
        ({"expected_status": 99}, "expected_status"),
        ({"expected_status": 600}, "expected_status"),
        ({"failures_to_down": 0}, "failures_to_down"),
        ({"successes_to_up": 101}, "successes_to_up"),
        ({"name": ""}, "name"),
        ({"name": " padded"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_refused_fields_are_named(client: FlaskClient, fields: dict[str, Any], field: str) -> None:
    body = {"name": unique_name(), "url": "tcp://127.0.0.1:9", **fields}
    errors = _fields(client.post("/targets", json=body))
    assert list(errors) == [field]


def test_every_missing_field_is_named(client: FlaskClient) -> None:
    assert _fields(client.post("/targets", json={})) == {
        "name": "field required",
        "url": "field required",
    }


def test_a_taken_name_is_a_409(client: FlaskClient) -> None:
    target = register(client)
    response = client.post("/targets", json={"name": target["name"], "url": "tcp://a:1"})
    assert response.status_code == 409
    assert response.get_json()["type"] == "/problems/target-exists"
    other = register(client)
    response = client.patch(f"/targets/{other['id']}", json={"name": target["name"]}, headers=ADMIN)
    assert response.status_code == 409
    assert client.get(f"/targets/{other['id']}").get_json()["name"] == other["name"]


def test_patch_changes_declared_fields_only(client: FlaskClient, engine: sa.Engine) -> None:
    target = register(client, expected_status=200)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE targets SET status = 'down', consecutive_failures = 4 WHERE id = :id"),
            {"id": target["id"]},
        )
    new_name = unique_name()
    response = client.patch(
        f"/targets/{target['id']}",
        json={"name": new_name, "url": "tcp://127.0.0.1:22", "expected_status": None},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.data
    changed = response.get_json()
    assert (changed["name"], changed["url"], changed["expected_status"]) == (
        new_name,
        "tcp://127.0.0.1:22",
        None,
    )
    assert changed["status"] == "down"  # status and counters stay
    assert changed["interval_seconds"] == target["interval_seconds"]
    assert client.get(f"/targets/{target['id']}").get_json() == changed


def test_patch_keeps_timeout_within_interval(client: FlaskClient) -> None:
    target = register(client, interval_seconds=10, timeout_seconds=4)
    path = f"/targets/{target['id']}"
    errors = _fields(client.patch(path, json={"timeout_seconds": 11}, headers=ADMIN))
    assert errors == {"timeout_seconds": "must not be above interval_seconds (10)"}
    errors = _fields(client.patch(path, json={"interval_seconds": 3}, headers=ADMIN))
    assert list(errors) == ["interval_seconds"]
    response = client.patch(path, json={"interval_seconds": 3, "timeout_seconds": 2}, headers=ADMIN)
    assert response.status_code == 200
    assert (response.get_json()["interval_seconds"], response.get_json()["timeout_seconds"]) == (
        3,
        2,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"name": None}, "name"),
        ({"interval_seconds": None}, "interval_seconds"),
        ({"url": "tcp://host"}, "url"),
        ({"id": 5}, "id"),
        ({"status": "up"}, "status"),
    ],
)
def test_refused_patches_name_the_field(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    target = register(client)
    assert list(_fields(client.patch(f"/targets/{target['id']}", json=body, headers=ADMIN))) == [
        field
    ]


def test_delete_then_nothing_is_there(client: FlaskClient) -> None:
    target = register(client)
    path = f"/targets/{target['id']}"
    assert client.delete(path, headers=ADMIN).status_code == 204
    for response in (
        client.get(path),
        client.get(f"{path}/history"),
        client.delete(path, headers=ADMIN),
        client.patch(path, json={"interval_seconds": 5}, headers=ADMIN),
    ):
        assert response.status_code == 404
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("path", ["/targets/0", "/targets/-1", "/targets/abc", "/targets/1e3"])
def test_ids_outside_the_document_name_nothing(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(("method", "body"), [("PATCH", {"interval_seconds": 5}), ("DELETE", None)])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_changes_need_the_admin_token(
    client: FlaskClient, method: str, body: Any, headers: dict[str, str]
) -> None:
    target = register(client)
    response = client.open(f"/targets/{target['id']}", method=method, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert client.get(f"/targets/{target['id']}").get_json() == target


def test_every_write_notifies_the_checker(client: FlaskClient, engine: sa.Engine) -> None:
    listener = engine.raw_connection()
    listener.detach()  # LISTENing: it must never go back to the pool
    dbapi: Any = listener.dbapi_connection
    dbapi.set_session(autocommit=True)
    dbapi.cursor().execute(f"LISTEN {NOTIFY_CHANNEL}")
    try:
        target = register(client)
        path = f"/targets/{target['id']}"
        assert client.patch(path, json={"interval_seconds": 7}, headers=ADMIN).status_code == 200
        assert client.delete(path, headers=ADMIN).status_code == 204
        heard: list[str] = []
        deadline = time.monotonic() + 10
        mine = str(target["id"])
        while heard.count(mine) < 3 and time.monotonic() < deadline:
            select.select([dbapi], [], [], 0.5)
            dbapi.poll()
            while dbapi.notifies:
                heard.append(dbapi.notifies.pop(0).payload)
        assert heard.count(mine) == 3  # other tests' writes may be heard too
    finally:
        listener.close()


@pytest.fixture
def without_postgres(settings: Settings) -> Iterator[FlaskClient]:
    from switchyard_api.app import create_app

    broken = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/x"})
    app: Flask = create_app(broken)
    yield app.test_client()
    app.extensions["switchyard"].close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/targets", {"name": "n", "url": "tcp://a:1"}),
        ("GET", "/targets", None),
        ("GET", "/targets/1", None),
        ("PATCH", "/targets/1", {"interval_seconds": 5}),
        ("DELETE", "/targets/1", None),
        ("GET", "/targets/1/history", None),
    ],
)
def test_without_postgres_each_endpoint_answers_503(
    without_postgres: FlaskClient, method: str, path: str, body: object
) -> None:
    response = without_postgres.open(path, method=method, json=body, headers=ADMIN)
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
