"""The jobs bodies' rules without servers: the document's patterns never promise what the
code refuses (URLs the catalogue's model parses, crons the store takes), and each rule the
document states is enforced with the field named."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.jobs import store
from switchyard.jobs.types import CATALOGUE, HttpRequestPayload
from switchyard_api.http.problems import Problem
from switchyard_api.jobs.bodies import (
    CRON_PATTERN,
    JOB_CREATE_SCHEMA,
    JobCreate,
    ScheduleCreate,
    parse_body,
)
from switchyard_api.jobs.payloads import KINDS, URL_PATTERN, check_payload
from switchyard_api.jobs.schemas import SCHEDULE_NAME_PATTERN


def _fields(data: Any, model: Any = JobCreate) -> list[str]:
    try:
        parse_body(model, data)
    except Problem as problem:
        return [error["field"] for error in problem.errors or []]
    return []


def test_the_document_has_a_branch_for_every_job_type() -> None:
    types = [branch["properties"]["type"]["const"] for branch in JOB_CREATE_SCHEMA["oneOf"]]
    assert sorted(types) == sorted(CATALOGUE)
    assert JOB_CREATE_SCHEMA["not"] == {"required": ["run_at", "delay_seconds"]}


@settings(max_examples=500, suppress_health_check=list(HealthCheck), deadline=None)
@given(st.from_regex(URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= 2048))
def test_every_url_the_pattern_allows_the_model_parses(url: str) -> None:
    HttpRequestPayload.model_validate({"url": url})
    assert check_payload("http.request", {"url": url}) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://1.2.3.256/",  # ends in a number: a bad IPv4 address
        "http://example.1/",
        "http://0x1f/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "http://example.com/ space",
        "http://example.com:0/",
        "https://example.com/" + "a" * 2040,
    ],
)
def test_urls_outside_the_pattern_are_refused_on_payload_url(url: str) -> None:
    assert _fields({"type": "http.request", "payload": {"url": url}}) == ["payload.url"]


@settings(max_examples=500, suppress_health_check=list(HealthCheck), deadline=None)
@given(st.from_regex(CRON_PATTERN, fullmatch=True))
def test_every_cron_the_pattern_allows_the_store_takes(cron: str) -> None:
    store.validate_cron(cron)
    try:
        store.next_fire_time(cron, datetime.now(UTC))
        refused = ""
    except ValueError as exc:
        refused = str(exc)
    # Only a day no month in the expression has (0 0 30 2 *): the documented 400.
    assert refused in ("", "failed to find next date")


@pytest.mark.parametrize(
    "cron", ["* * * * *", "*/5 0-6,22-23 1,15 JAN-MAR mon-fri", "59 23 31 12 7", "0 0 1 1 *"]
)
def test_crons_accepted(cron: str) -> None:
    assert re.match(CRON_PATTERN, cron)
    body = {"name": "n", "cron": cron, "type": "echo", "payload": {}}
    assert _fields(body, ScheduleCreate) == []


@pytest.mark.parametrize(
    "cron", ["* * * *", "* * * * * *", "60 * * * *", "*/0 * * * *", "@hourly", "*  * * * *"]
)
def test_crons_refused_on_cron(cron: str) -> None:
    body = {"name": "n", "cron": cron, "type": "echo", "payload": {}}
    assert _fields(body, ScheduleCreate) == ["cron"]


@pytest.mark.parametrize("name", ["nightly", "a.b-c_d", "_x", "9" * 200])
def test_schedule_names_accepted(name: str) -> None:
    assert re.match(SCHEDULE_NAME_PATTERN, name)


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a b", "é", "9" * 201])
def test_schedule_names_refused(name: str) -> None:
    body = {"name": name, "cron": "* * * * *", "type": "echo", "payload": {}}
    assert _fields(body, ScheduleCreate) == ["name"]


@pytest.mark.parametrize(
    ("job_type", "payload", "fields"),
    [
        ("sleep", {"seconds": "5"}, ["payload.seconds"]),  # a string is not a number
        ("sleep", {}, ["payload.seconds"]),
        ("sleep", {"seconds": 5, "extra": 1}, ["payload.extra"]),
        ("fail", {"times": 2.0}, []),  # JSON Schema's integer includes 2.0
        ("fail", {"times": 2.5}, ["payload.times"]),
        ("fail", {"times": True}, ["payload.times"]),
        ("echo", {"deep": {"text": "a\x00b"}}, ["payload.deep.text"]),
        ("echo", {"big": [1, 2**64]}, ["payload.big[1]"]),
        ("logs.retention", {"days": 0, "service": ""}, ["payload.days", "payload.service"]),
        ("http.request", {"url": "http://a.example", "method": "TRACE"}, ["payload.method"]),
        ("http.request", {"url": "http://a.example", "headers": {"k": 1}}, ["payload.headers.k"]),
    ],
)
def test_payload_problems_are_named_by_path(
    job_type: str, payload: dict[str, Any], fields: list[str]
) -> None:
    assert _fields({"type": job_type, "payload": payload}) == fields


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"payload": {}}, ["type"]),
        ({"type": "echo"}, ["payload"]),
        ({"type": "echo", "payload": [1]}, ["payload"]),
        ({"type": 5, "payload": {}}, ["type"]),
        ({"type": "nope", "payload": {}}, ["type"]),
        ({"type": "echo", "payload": {}, "max_attempts": 0}, ["max_attempts"]),
        ({"type": "echo", "payload": {}, "max_attempts": 101}, ["max_attempts"]),
        ({"type": "echo", "payload": {}, "max_attempts": None}, ["max_attempts"]),
        ({"type": "echo", "payload": {}, "timeout_seconds": 86_401}, ["timeout_seconds"]),
        ({"type": "echo", "payload": {}, "delay_seconds": -1}, ["delay_seconds"]),
        ({"type": "echo", "payload": {}, "delay_seconds": 30 * 86_400 + 1}, ["delay_seconds"]),
        ({"type": "echo", "payload": {}, "run_at": "2026-01-01"}, ["run_at"]),
        ({"type": "echo", "payload": {}, "idempotency_key": ""}, ["idempotency_key"]),
        ({"type": "echo", "payload": {}, "idempotency_key": "k" * 201}, ["idempotency_key"]),
        ({"type": "echo", "payload": {}, "priority": 1}, ["priority"]),
        (
            {"type": "echo", "payload": {}, "run_at": "2030-01-01T00:00:00Z", "delay_seconds": 5},
            ["run_at", "delay_seconds"],
        ),
        (
            {"type": "sleep", "payload": {"seconds": -1}, "max_attempts": "3"},
            ["max_attempts", "payload.seconds"],
        ),
    ],
)
def test_body_problems_are_each_named(body: dict[str, Any], fields: list[str]) -> None:
    assert _fields(body) == fields


def test_unknown_type_lists_the_known_types() -> None:
    with pytest.raises(Problem) as caught:
        parse_body(JobCreate, {"type": "nope", "payload": {}})
    [error] = caught.value.errors or []
    assert error["field"] == "type"
    assert all(name in error["message"] for name in KINDS)


@pytest.mark.parametrize("number", ["-9223372036854775809", "18446744073709551616", "1e19"])
def test_integers_beyond_64_bits_are_refused_even_when_read_as_floats(number: str) -> None:
    data = orjson.loads(f'{{"type": "echo", "payload": {{"a": {{"b": [{number}]}}}}}}')
    assert _fields(data) == ["payload.a.b[0]"]
