"""Bad input to the ingest endpoints: always a 400 or 413 problem naming what is wrong."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

pytestmark = pytest.mark.integration

NDJSON = {"Content-Type": "application/x-ndjson"}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = orjson.loads(response.data)
    assert body["status"] == status
    return body


def _fields(body: dict[str, Any]) -> dict[str, str]:
    return {error["field"]: error["message"] for error in body["errors"]}


def test_malformed_json_is_a_400(client: FlaskClient) -> None:
    for raw in (b'{"service": "a", "message": ', b"[{]", b"", b"   "):
        body = _problem(client.post("/logs", data=raw, content_type="application/json"), 400)
        assert body["type"] == "/problems/malformed-json"


def test_every_bad_field_is_named_with_its_index(client: FlaskClient) -> None:
    items = [
        {"service": "a", "message": "fine"},
        {"service": 5, "message": ["no"]},
        {"service": "a", "message": "m", "level": "loud"},
        {"service": "a", "message": "m", "timestamp": "yesterday"},
        {"service": "a", "message": "m", "timestamp": "2026-01-01T10:00:00"},
        {"service": "a", "message": "m", "id": "not-a-uuid", "extra": 1},
        {"message": "m", "attributes": []},
        "a string",
    ]
    fields = _fields(_problem(client.post("/logs", json=items), 400))
    assert set(fields) == {
        "[1].service",
        "[1].message",
        "[2].level",
        "[3].timestamp",
        "[4].timestamp",
        "[5].id",
        "[5].extra",
        "[6].service",
        "[6].attributes",
        "[7]",
    }
    assert "debug" in fields["[2].level"]
    assert fields["[5].extra"] == "unknown field"


def test_a_single_object_names_the_field_alone(client: FlaskClient) -> None:
    fields = _fields(
        _problem(
            client.post("/health", json={"service": "a", "status": "ok", "latency_ms": -1}), 400
        )
    )
    assert set(fields) == {"status", "latency_ms"}


def test_ndjson_names_the_bad_line(client: FlaskClient) -> None:
    raw = (
        b'{"service":"a","message":"ok"}\n\n{"service":"a","message":"m","level":"x"}\n'
        b"{not json\n[1]\n"
    )
    fields = _fields(_problem(client.post("/logs", data=raw, headers=NDJSON), 400))
    assert set(fields) == {"[2].level", "[3]", "[4]"}
    assert "not valid JSON" in fields["[3]"]


def test_bodies_that_are_not_objects_or_arrays(client: FlaskClient) -> None:
    for raw in (b"42", b'"text"', b"null"):
        _problem(client.post("/logs", data=raw, content_type="application/json"), 400)
    _problem(client.post("/logs", json=[]), 400)
    _problem(client.post("/logs", data=b"\n\n", headers=NDJSON), 400)


def test_a_huge_body_is_a_413(client: FlaskClient) -> None:
    huge = orjson.dumps([{"service": "a", "message": "x" * 60_000}] * 20)
    body = _problem(client.post("/logs", data=huge, content_type="application/json"), 413)
    assert body["type"] == "about:blank"


def test_more_items_than_allowed_is_a_413(client: FlaskClient) -> None:
    many = b"\n".join([b'{"service":"a","message":"m"}'] * 10_001)
    body = _problem(client.post("/logs", data=many, headers=NDJSON), 413)
    assert "10001" in body["detail"]


def test_read_filters_are_validated(client: FlaskClient) -> None:
    for query in (
        "level=loud",
        "since=yesterday",
        "until=2026-01-01T00:00:00",
        "limit=0",
        "limit=1001",
        "cursor=nonsense",
        "cursor=e30",
    ):
        _problem(client.get(f"/logs?{query}"), 400)
    _problem(client.get("/health?since=soon"), 400)


def test_reads_of_nothing_are_an_empty_page(client: FlaskClient) -> None:
    for path in ("/logs?service=nobody&q=50%25_off", "/health?service=nobody"):
        response = client.get(path)
        assert response.status_code == 200
        assert orjson.loads(response.data) == {"items": [], "next_cursor": None}


def test_the_openapi_document_describes_ingest(client: FlaskClient) -> None:
    document = orjson.loads(client.get("/openapi.json").data)
    assert {"post", "get"} <= set(document["paths"]["/logs"])
    assert {"post", "get"} <= set(document["paths"]["/health"])
    assert "429" in document["paths"]["/logs"]["post"]["responses"]
    assert {"LogIn", "HealthIn", "LogEntry", "HealthPing"} <= set(document["components"]["schemas"])


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        (
            "/logs",
            b'{"service":"a","message":"x","attributes":{"b":3582503714976126992384}}',
            "attributes.b",
        ),
        (
            "/logs",
            b'[{"service":"a","message":"x"},{"service":"a","message":"x",'
            b'"attributes":{"b":[1,{"c":-9223372036854775809}]}}]',
            "[1].attributes.b[1].c",
        ),
        ("/logs", b'{"service":"a","message":"x","attributes":{"b":1e400}}', "attributes.b"),
        ("/logs", b'{"service":"a","message":"x","attributes":{"b":"nul\\u0000"}}', "attributes.b"),
        ("/logs", b'{"service":"a","message":"nul\\u0000"}', "message"),
        # JSON Schema's "integer" is any number without a fractional part: 1e30 is one.
        ("/health", b'{"service":"a","status":"up","details":{"n":1e30}}', "details.n"),
        ("/logs", b'{"service":"a","message":"x","timestamp":0}', "timestamp"),
        ("/health", b'{"service":"a","status":"up","timestamp":0}', "timestamp"),
        ("/health", b'{"service":"a","status":"up","timestamp":"2026-01-01"}', "timestamp"),
        ("/health", b'{"service":"a","status":"up","latency_ms":"5"}', "latency_ms"),
        (
            "/logs",
            b'{"service":"a","message":"x","timestamp":"0001-01-01T00:00:00+01:00"}',
            "timestamp",
        ),
    ],
)
def test_what_nothing_downstream_can_hold_is_a_400_naming_it(
    client: FlaskClient, path: str, raw: bytes, field: str
) -> None:
    body = _problem(client.post(path, data=raw, content_type="application/json"), 400)
    assert set(_fields(body)) == {field}


def test_numbers_within_64_bits_are_fine(client: FlaskClient) -> None:
    raw = (
        b'{"service":"a","message":"x","attributes":{"max":9223372036854775807,'
        b'"min":-9223372036854775808,"f":1.5e-300,"g":-0.5,"two":2.0}}'
    )
    response = client.post("/logs", data=raw, content_type="application/json")
    assert response.status_code == 202, response.data


def test_odd_stored_json_never_fails_a_read(client: FlaskClient, engine: sa.Engine) -> None:
    """Rows no API request could have made (another writer, an older version) still read."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO logs (id, service, level, message, timestamp, attributes, received_at)"
                " VALUES (gen_random_uuid(), 'odd-json', 'info', 'm', now(), CAST(:a AS jsonb),"
                " now())"
            ),
            [{"a": '{"b": 3582503714976126992384, "c": 1e400}'}, {"a": "[1, 2]"}],
        )
        connection.execute(
            sa.text(
                "INSERT INTO health_pings (id, service, status, latency_ms, details, timestamp,"
                " received_at) VALUES (gen_random_uuid(), 'odd-json', 'up', 'NaN',"
                " CAST(:d AS jsonb), now(), now())"
            ),
            {"d": '{"b": -3582503714976126992384}'},
        )
    logs = client.get("/logs?service=odd-json")
    assert logs.status_code == 200, logs.data
    # Valid JSON, though beyond what orjson parses: the numbers as PostgreSQL holds them.
    items = json.loads(logs.data)["items"]
    assert [item["attributes"] for item in items if isinstance(item["attributes"], dict)] == [
        {"b": 3582503714976126992384, "c": 10**400}
    ]
    health = client.get("/health?service=odd-json")
    assert health.status_code == 200, health.data
    assert json.loads(health.data)["items"][0]["latency_ms"] is None
