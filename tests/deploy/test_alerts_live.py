"""Every alert of the prod PrometheusRule names metrics that running services export.

The static test (test_alerts.py) reads metric declarations in the code; this one starts
every service of the dev stack's catalogue as a real process on real PostgreSQL, Redis
and Kafka, sends the API a little traffic (gunicorn's multiprocess registry only exports
a metric once a worker has touched it), scrapes each process's /metrics on its admin
port, and checks each alert's metrics against what was actually served.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from switchyard.config import Settings
from switchyard_devtools.bench.stack import service
from switchyard_devtools.stack.services import NAMES, build_specs
from switchyard_devtools.testing.infra import isolated_settings, settings_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRAPE_SERIES = {"up"}  # made by Prometheus itself for each target
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def exported_names(text: str) -> set[str]:
    """Series names an exposition serves: its samples, and every family it declares
    (a labelled family without children yet is declared but has no sample)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
            names.update(family + suffix for suffix in SUFFIXES)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=10).close()


def test_every_alert_names_metrics_the_running_services_export(
    settings: Settings, helpers: Any, tmp_path: Path
) -> None:
    own = isolated_settings(settings, "alerts")
    specs = build_specs(NAMES, settings_env(own), topic_prefix=own.kafka.topic_prefix)
    served: dict[str, set[str]] = {}
    with contextlib.ExitStack() as stack:
        for spec in specs:
            stack.enter_context(
                service(
                    list(spec.argv),
                    own,
                    dict(spec.env),
                    ready_url=spec.ready_url,
                    log=tmp_path / f"{spec.name}.log",
                )
            )
        api = next(s for s in specs if s.name == "api")
        base = f"http://127.0.0.1:{api.port}"
        log = {"service": "alerts", "level": "info", "message": "hello"}
        _post(f"{base}/logs", json.dumps(log).encode())
        _post(f"{base}/logs", b"{not json")  # an ingest error
        _post(f"{base}/api/coupons", b"{}")  # a coupon route, refused
        time.sleep(1.0)  # the health-checker's first cycle
        for spec in specs:
            url = f"http://127.0.0.1:{spec.env['ADMIN_PORT']}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                served[spec.name] = exported_names(response.read().decode())
    everything = set().union(*served.values())
    (rule,) = [
        r
        for r in helpers.kustomize_build(REPO / "deploy/k8s/overlays/prod")
        if r["kind"] == "PrometheusRule"
    ]
    alerts = [each for group in rule["spec"]["groups"] for each in group["rules"]]
    assert alerts
    for alert in alerts:
        used, _ = helpers.promql_metrics_and_labels(alert["expr"])
        missing = sorted(used - everything - SCRAPE_SERIES)
        assert not missing, f"{alert['alert']}: {missing} served by no running service"
    # And the check can fail: a name nobody serves is not in the union.
    assert "coupon_claims_failed_total" not in everything
