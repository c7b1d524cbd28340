"""Reading targets over real PostgreSQL: list pages and the status filter, the last check
and uptime over 24 h, and the history of checks newest first across cursor pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from switchyard_api.targets.schemas import history_cursor

from .conftest import register, store_check, targets_table

pytestmark = pytest.mark.integration


def _all_pages(client: FlaskClient, path: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"{path}{'&' if '?' in path else '?'}{query}")
        assert response.status_code == 200, response.data
        page = response.get_json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never end")


def test_list_pages_by_id_and_filters_by_status(client: FlaskClient, engine: sa.Engine) -> None:
    mine = [register(client)["id"] for _ in range(5)]
    with engine.begin() as connection:
        connection.execute(
            sa.update(targets_table).where(targets_table.c.id == mine[2]).values(status="down")
        )
    ids = [item["id"] for item in _all_pages(client, "/targets", 2)]
    assert ids == sorted(set(ids))
    assert set(mine) <= set(ids)
    down = [item["id"] for item in _all_pages(client, "/targets?status=down", 1)]
    assert mine[2] in down
    assert not set(mine) - {mine[2]} & set(down)
    unknown = _all_pages(client, "/targets?status=unknown", 1000)
    assert all(item["status"] == "unknown" for item in unknown)


@pytest.mark.parametrize(
    "query", ["status=sideways", "limit=0", "limit=1001", "limit=5.0", "cursor=-1", "cursor=x"]
)
def test_bad_list_queries_are_400(client: FlaskClient, query: str) -> None:
    response = client.get(f"/targets?{query}")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == query.split("=")[0]


def test_a_target_shows_its_last_check_and_uptime(client: FlaskClient, engine: sa.Engine) -> None:
    target = register(client)
    quiet = register(client)
    now = datetime.now(UTC)
    for minutes, status in ((1, "up"), (2, "up"), (3, "down"), (4, "up")):
        store_check(engine, target["id"], now - timedelta(minutes=minutes), status)
    store_check(engine, target["id"], now - timedelta(hours=30), "down")  # outside 24 h
    incident = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            sa.update(targets_table)
            .where(targets_table.c.id == target["id"])
            .values(
                status="up",
                incident_id=incident,
                status_changed_at=now,
                last_checked_at=now,
                last_latency_ms=12.5,
                last_status_code=200,
                last_error=None,
            )
        )
    shown = client.get(f"/targets/{target['id']}").get_json()
    assert shown["uptime_24h"] == 0.75
    assert (shown["status"], shown["incident_id"]) == ("up", str(incident))
    assert (shown["last_latency_ms"], shown["last_status_code"]) == (12.5, 200)
    assert datetime.fromisoformat(shown["last_checked_at"]) == now
    listed = {item["id"]: item for item in _all_pages(client, "/targets", 1000)}
    assert listed[target["id"]] == shown
    assert listed[quiet["id"]]["uptime_24h"] is None


def test_history_is_newest_first_across_pages(client: FlaskClient, engine: sa.Engine) -> None:
    target = register(client)
    other = register(client)
    base = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    stored: list[tuple[datetime, uuid.UUID]] = []
    for index in range(7):
        # Two checks share each time: the id breaks the tie, so no page skips or repeats.
        checked_at = base + timedelta(seconds=index // 2)
        check_id = uuid.uuid4()
        status = "down" if index == 3 else "up"
        fields: dict[str, Any] = {"latency_ms": 10.0 + index, "status_code": 200}
        if status == "down":
            fields = {"latency_ms": None, "error": "connection refused"}
        store_check(engine, target["id"], checked_at, status, check_id, **fields)
        stored.append((checked_at, check_id))
    store_check(engine, other["id"], base + timedelta(seconds=1))
    expected = sorted(stored, reverse=True)
    for limit in (1, 2, 3, 7, 50):
        items = _all_pages(client, f"/targets/{target['id']}/history", limit)
        assert [datetime.fromisoformat(item["checked_at"]) for item in items] == [
            checked_at for checked_at, _ in expected
        ]
    items = _all_pages(client, f"/targets/{target['id']}/history", 50)
    down = items[[check_id for _, check_id in expected].index(stored[3][1])]
    assert down == {
        "checked_at": stored[3][0].isoformat().replace("+00:00", "Z"),
        "status": "down",
        "latency_ms": None,
        "status_code": None,
        "error": "connection refused",
    }
    # A cursor is (checked_at, id): the page after the third newest check.
    third = expected[2]
    cursor = history_cursor(third[0], str(third[1]))
    page = client.get(f"/targets/{target['id']}/history?cursor={cursor}").get_json()
    assert len(page["items"]) == 4 and page["next_cursor"] is None


@pytest.mark.parametrize(
    ("cursor", "count"),
    [
        (f"999999999999999999_{uuid.uuid4()}", 1),  # beyond year 9999: before it, all
        (f"-999999999999999999_{uuid.uuid4()}", 0),  # before year 1: nothing older
        (f"0_{uuid.UUID(int=0)}", 0),  # 1970: nothing older
    ],
)
def test_every_cursor_the_pattern_allows_is_a_position(
    client: FlaskClient, engine: sa.Engine, cursor: str, count: int
) -> None:
    target = register(client)
    store_check(engine, target["id"], datetime.now(UTC))
    response = client.get(f"/targets/{target['id']}/history?cursor={cursor}")
    assert response.status_code == 200, response.data
    assert len(response.get_json()["items"]) == count


@pytest.mark.parametrize(
    "cursor", ["1_2", "abc", f"1.5_{uuid.uuid4()}", f"01_{uuid.uuid4()}", f"1_{uuid.uuid4()}x"]
)
def test_history_refuses_cursors_it_does_not_issue(client: FlaskClient, cursor: str) -> None:
    target = register(client)
    response = client.get(f"/targets/{target['id']}/history?cursor={cursor}")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "cursor"


def test_history_of_an_unknown_target_is_a_404(client: FlaskClient) -> None:
    assert client.get("/targets/999999999999/history").status_code == 404
