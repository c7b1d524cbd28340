"""Target records refuse bad input, naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from switchyard_health_checker.targets import ProbeError, ProbeResult, Target, parse_url


@pytest.mark.parametrize(
    ("url", "kind", "host", "port"),
    [
        ("http://svc.internal/healthz", "http", "svc.internal", 80),
        ("https://API.example.com:8443/", "http", "api.example.com", 8443),
        ("tcp://db:5432", "tcp", "db", 5432),
        ("tcp://[::1]:6379", "tcp", "::1", 6379),
    ],
)
def test_urls_taken_apart(url: str, kind: str, host: str, port: int) -> None:
    endpoint = parse_url(url)
    assert (endpoint.kind, endpoint.host, endpoint.port) == (kind, host, port)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "ftp://x/"}, "url"),
        ({"url": "tcp://db"}, "url"),
        ({"url": "tcp://db:5432/path"}, "url"),
        ({"url": "http://user:pw@x/"}, "url"),
        ({"url": "http:///nohost"}, "url"),
        ({"url": "http://x:99999/"}, "url"),
        ({"url": "http://x/" + "a" * 3000}, "url"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": 10**9}, "interval_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 31}, "timeout_seconds"),  # longer than the interval
        ({"expected_status": 99}, "expected_status"),
        ({"url": "tcp://db:1", "expected_status": 200}, "expected_status"),
        ({"failures_to_down": 0}, "failures_to_down"),
        ({"successes_to_up": 101}, "successes_to_up"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_targets_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"id": 1, "name": "t", "url": "http://svc/"} | fields
    with pytest.raises(ValueError, match=f"^{field}:"):
        Target(**values)


def test_a_result_is_up_exactly_without_error_and_in_utc() -> None:
    now = datetime.now().astimezone()
    assert ProbeResult(1, now, 1.0, 200).status == "up"
    assert (
        ProbeResult(1, now, 1.0, 500, ProbeError("unexpected_status", "HTTP 500")).status == "down"
    )
    with pytest.raises(ValueError, match=r"^checked_at:"):
        ProbeResult(1, datetime.now(), 1.0)
    with pytest.raises(ValueError, match=r"^error:"):
        ProbeResult(1, now, 1.0, None, ProbeError("made_up", "?"))
