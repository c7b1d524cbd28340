"""Readiness that does not cascade, against a real gunicorn API and a Redis of its own.

The Redis is paused (SIGSTOP: connections hang, the harshest outage for a client): the
ingest and coupon endpoints keep answering, /readyz stays 200 naming redis as degraded,
on the public port and on ADMIN_PORT (the gunicorn master), which also serves every
worker's /metrics while the public /metrics is off (API__PUBLIC_METRICS=false).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchyard.config import Settings
from switchyard_devtools.bench.stack import script, service
from switchyard_devtools.stack.infra import Server, start_redis
from switchyard_devtools.stack.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Server]:
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        os.kill(server.process.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        server.stop()


def test_redis_down_leaves_ingest_and_coupons_answering_and_the_pod_ready(
    settings: Settings, own_redis: Server, tmp_path: Path
) -> None:
    port, admin_port = free_port(), free_port()
    env = {
        "API__PORT": str(port),
        "API__WORKERS": "2",
        "ADMIN_PORT": str(admin_port),
        "REDIS_URL": own_redis.url,
        "API__PUBLIC_METRICS": "false",
    }
    api, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    argv = [script("switchyard-api"), "serve"]
    with (
        service(argv, settings, env, ready_url=f"{admin}/readyz", log=tmp_path / "api.log"),
        httpx.Client(timeout=30) as http,
    ):
        ready = http.get(f"{api}/readyz").json()
        assert ready["checks"]["redis"] == "ok" and ready["degraded"] == {}

        os.kill(own_redis.process.pid, signal.SIGSTOP)
        coupon = f"DEGRADED_{uuid.uuid4().hex[:8]}"
        for _ in range(3):  # each worker meets the dead Redis, some more than once
            logs = http.post(f"{api}/logs", json={"service": "t", "message": "redis is down"})
            assert logs.status_code == 202, logs.text
        created = http.post(f"{api}/api/coupons", json={"name": coupon, "amount": 2})
        assert created.status_code == 201, created.text
        claims = [
            http.post(
                f"{api}/api/coupons/claim", json={"user_id": user, "coupon_name": coupon}
            ).status_code
            for user in ("u1", "u2", "u3", "u1")
        ]
        assert claims == [200, 200, 400, 409], "the gate steps aside; PostgreSQL decides"
        shown = http.get(f"{api}/api/coupons/{coupon}").json()
        assert shown["remaining_amount"] == 0 and sorted(shown["claimed_by"]) == ["u1", "u2"]

        for base in (api, admin):
            readyz = http.get(f"{base}/readyz")
            assert readyz.status_code == 200, (base, readyz.text)
            body = readyz.json()
            assert body["status"] == "ready"
            assert set(body["degraded"]) == {"redis"}, body
            assert body["checks"]["postgres"] == "ok" and body["checks"]["kafka"] == "ok"
        assert http.get(f"{admin}/healthz").status_code == 200

        # Metrics: off the public port, every worker's on the admin port.
        assert http.get(f"{api}/metrics").status_code == 404
        scraped = http.get(f"{admin}/metrics")
        assert scraped.status_code == 200
        assert 'ingest_requests_total{kind="logs"} 3.0' in scraped.text
        assert "http_requests_total" in scraped.text
