"""``/schedules`` over real PostgreSQL: create, read, list by name, delete, admin only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from .conftest import ADMIN

pytestmark = pytest.mark.integration


def _name() -> str:
    return f"sched-{uuid.uuid4().hex[:12]}"


def _body(**changes: Any) -> dict[str, Any]:
    return {"name": _name(), "cron": "*/5 * * * *", "type": "echo", "payload": {"a": 1}} | changes


def test_create_read_delete(client: FlaskClient) -> None:
    body = _body(cron="0 3 * * MON-FRI", type="logs.retention", payload={"days": 30})
    response = client.post("/schedules", json=body, headers=ADMIN)
    assert response.status_code == 201, response.data
    schedule = response.get_json()
    assert response.headers["Location"] == f"/schedules/{body['name']}"
    assert {key: schedule[key] for key in body} == body
    fire = datetime.fromisoformat(schedule["next_fire_at"])
    assert (fire.hour, fire.minute, fire.weekday() < 5) == (3, 0, True)
    assert datetime.now(UTC) < fire < datetime.now(UTC) + timedelta(days=4)

    read = client.get(f"/schedules/{body['name']}", headers=ADMIN)
    assert read.status_code == 200 and read.get_json() == schedule

    taken = client.post("/schedules", json=_body(name=body["name"]), headers=ADMIN)
    assert taken.status_code == 409
    assert taken.content_type == "application/problem+json"

    assert client.delete(f"/schedules/{body['name']}", headers=ADMIN).status_code == 204
    assert client.get(f"/schedules/{body['name']}", headers=ADMIN).status_code == 404
    assert client.delete(f"/schedules/{body['name']}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("* * * *", "five cron fields"),
        ("61 * * * *", "five cron fields"),
        ("*/0 * * * *", "five cron fields"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_a_bad_cron_is_a_400_on_cron(client: FlaskClient, cron: str, says: str) -> None:
    response = client.post("/schedules", json=_body(cron=cron), headers=ADMIN)
    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "cron" and says in error["message"]


def test_type_and_payload_are_checked_as_for_jobs(client: FlaskClient) -> None:
    unknown = client.post("/schedules", json=_body(type="nope"), headers=ADMIN)
    assert [e["field"] for e in unknown.get_json()["errors"]] == ["type"]
    bad = client.post(
        "/schedules", json=_body(type="sleep", payload={"seconds": -1}), headers=ADMIN
    )
    assert [e["field"] for e in bad.get_json()["errors"]] == ["payload.seconds"]


def test_list_pages_by_name(client: FlaskClient) -> None:
    prefix = f"list-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in reversed(names):
        assert client.post("/schedules", json=_body(name=name), headers=ADMIN).status_code == 201
    seen: list[str] = []
    cursor = f"{prefix}-"  # any name is a position: start just before ours
    while cursor is not None and len(seen) < 5:
        page = client.get(f"/schedules?limit=2&cursor={cursor}", headers=ADMIN).get_json()
        seen += [s["name"] for s in page["items"] if s["name"].startswith(prefix)]
        cursor = page["next_cursor"]
    assert seen == names


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/schedules"),
        ("GET", "/schedules"),
        ("GET", "/schedules/x"),
        ("DELETE", "/schedules/x"),
    ],
)
def test_schedules_need_the_admin_token(client: FlaskClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.open(path, method=method, json=_body(), headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("name", [".", ".x", "a b", "x" * 201])
def test_names_outside_the_pattern_name_nothing(client: FlaskClient, name: str) -> None:
    assert client.get(f"/schedules/{name}", headers=ADMIN).status_code == 404
