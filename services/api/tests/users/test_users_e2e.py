"""The users slice end to end: real gunicorn, real relay process, events on Kafka."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchyard.config import Settings
from switchyard.kafka.tail import wait_for_records
from switchyard.kafka.topics import USERS, topic_name
from switchyard_devtools.bench.stack import api_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("e2e")
    with api_server(settings, logs, relay=True, LOG_LEVEL="info") as url:
        yield url


@pytest.fixture(scope="module")
def api_log(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(str(tmp_path_factory.getbasetemp())) / "e2e0" / "api.log"


def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_new_user_story(api_url: str, settings: Settings) -> None:
    status, headers, body = call(
        "POST",
        f"{api_url}/users",
        {"name": "Grace", "mobile": "+1 555 0100", "latitude": 38.9, "longitude": -77.0},
        {"X-Request-ID": "story-1"},
    )
    assert status == 201 and headers["X-Request-ID"] == "story-1"
    user = json.loads(body)
    url = f"{api_url}/users/{user['id']}"
    assert call("GET", url)[1]["X-Cache"] == "MISS"
    assert call("GET", url)[1]["X-Cache"] == "HIT"
    assert call("PATCH", url, {"name": "Grace Hopper"})[0] == 200
    status, headers, body = call("GET", url)
    assert headers["X-Cache"] == "MISS" and json.loads(body)["name"] == "Grace Hopper"
    assert call("DELETE", url)[0] == 401
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    assert call("DELETE", url, headers={"Authorization": f"Bearer {token}"})[0] == 204
    assert call("GET", url)[0] == 404

    events = wait_for_records(
        settings, topic_name(settings, USERS), lambda r: r.key == str(user["id"]).encode(), count=3
    )
    assert [e.event.type for e in events] == ["user.created", "user.updated", "user.deleted"]
    assert events[0].headers["x-request-id"] == "story-1"
    assert events[0].event.data["name"] == "Grace"
    assert events[1].event.data["name"] == "Grace Hopper"


def test_metrics_add_up_across_gunicorn_workers(api_url: str) -> None:
    for _ in range(20):
        call("GET", f"{api_url}/healthz")
    _, _, body = call("GET", f"{api_url}/metrics")
    text = body.decode()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("http_requests_total{") and 'route="/healthz"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 20


def test_readiness_and_openapi_are_served(api_url: str) -> None:
    status, _, body = call("GET", f"{api_url}/readyz")
    assert status == 200 and json.loads(body)["checks"] == {
        "postgres": "ok",
        "redis": "ok",
        "kafka": "ok",
    }
    status, _, body = call("GET", f"{api_url}/openapi.json")
    assert status == 200 and json.loads(body)["openapi"] == "3.1.0"


def test_log_lines_are_json_and_carry_the_request_id(api_url: str, api_log: Path) -> None:
    call("GET", f"{api_url}/users/2147483000", headers={"X-Request-ID": "find-me-in-logs"})
    import time

    for _ in range(50):
        lines = [
            json.loads(line) for line in api_log.read_text().splitlines() if line.startswith("{")
        ]
        mine = [line for line in lines if line.get("request_id") == "find-me-in-logs"]
        if mine:
            break
        time.sleep(0.1)
    assert mine, "no log line carried the request id"
    assert mine[0]["status"] == 404 and mine[0]["service"] == "api"
    assert {"timestamp", "level", "message"} <= set(mine[0])
