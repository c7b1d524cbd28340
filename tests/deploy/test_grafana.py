"""The Grafana provisioning and dashboard: every panel queries the provisioned
Prometheus datasource for metrics that shared/src/switchyard/metrics.py declares, with
labels those metrics have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy/grafana"
DASHBOARD = GRAFANA / "dashboards/switchyard.json"

# What the dashboard must show (the brief's list; kafka_consumer_lag is not declared).
REQUIRED_METRICS = {
    "http_requests_total",
    "http_request_duration_seconds",
    "ingest_errors_total",
    "ingest_requests_total",
    "ingest_events_total",
    "batch_size",
    "batches_flushed_total",
    "write_latency_seconds",
    "worker_failures_total",
    "worker_retries_total",
    "end_to_end_latency_seconds",
    "jobs_processed_total",
    "jobs_in_progress",
    "job_latency_seconds",
    "events_published_total",
    "events_consumed_total",
    "dead_letters_total",
    "outbox_pending",
    "outbox_published_total",
    "cache_requests_total",
}
# The image-worker's metrics (issue 8); the image-worker row must graph each.
IMAGE_METRICS = {
    "images_processed_total",
    "image_bytes_total",
    "image_download_seconds",
    "image_compress_seconds",
    "products_processed_total",
    "products_by_status",
}
# Shared metrics the image-worker row graphs, filtered to the image-worker's group/topic.
IMAGE_ROW_SHARED = {"kafka_consumer_lag", "dead_letters_total"}
# The health-checker's metrics (issue 10: probes by result and reason, probe latency,
# targets per replica, probe lag, in-flight probes; shards and status changes besides);
# the "Health checker" row must graph each.
HEALTH_METRICS = {
    "health_probes_total",
    "health_probe_latency_seconds",
    "health_probe_lag_seconds",
    "health_probes_in_flight",
    "health_targets_scheduled",
    "health_shards_owned",
    "health_status_changes_total",
    "health_probes_skipped_total",
    "health_probe_results_dropped_total",
    "health_checks_unpublished_total",
}


def test_promql_reader(helpers: Any) -> None:
    metrics, labels = helpers.promql_metrics_and_labels(
        "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        '{route!="/healthz", method=~"GET|POST"}[$__rate_interval]))) / on(job) '
        "clamp_min(sum(jobs_in_progress), 1e-9)"
    )
    assert metrics == {"http_request_duration_seconds_bucket", "jobs_in_progress"}
    assert labels == {"le", "route", "method", "job"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    provisioning = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert provisioning["apiVersion"] == 1
    (source,) = provisioning["datasources"]
    return source


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return panels


def test_datasource_points_at_compose_prometheus(
    datasource: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert datasource["type"] == "prometheus" and datasource["uid"]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and "prometheus" in compose["services"]
    assert "127.0.0.1:9090:9090" in compose["services"]["prometheus"]["ports"]
    assert url.port == 9090


def test_dashboard_provider_matches_the_compose_mount(compose: dict[str, Any]) -> None:
    provisioning = yaml.safe_load((GRAFANA / "provisioning/dashboards/switchyard.yml").read_text())
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    mounts = dict(
        v.split(":")[:2][::-1]
        for v in compose["services"]["grafana"]["volumes"]
        if v.startswith("./")
    )
    source = mounts[provider["options"]["path"]]
    assert (REPO / source / DASHBOARD.name).resolve() == DASHBOARD.resolve()
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"


def test_dashboard_layout(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_every_panel_queries_declared_metrics(
    dashboard: dict[str, Any],
    datasource: dict[str, Any],
    metrics_declared: dict[str, Any],
    helpers: Any,
) -> None:
    series = {s: decl for decl in metrics_declared.values() for s in decl.series()}
    queried = 0
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        title = panel["title"]
        assert panel["datasource"]["uid"] == datasource["uid"], title
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == datasource["uid"]
            metrics, labels = helpers.promql_metrics_and_labels(target["expr"])
            assert metrics, f"{title}: {target['expr']} queries no metric"
            unknown = metrics - set(series)
            assert not unknown, f"{title}: {sorted(unknown)} not declared in metrics.py"
            known_labels = helpers.BUILTIN_LABELS.union(*(series[m].labels for m in metrics))
            assert labels <= known_labels, (
                f"{title}: labels {sorted(labels - known_labels)} are on none of {metrics}"
            )
            for metric in metrics:
                if metric.endswith("_bucket"):
                    assert "histogram_quantile" in target["expr"], title
                if series[metric].kind == "Counter":
                    assert re.search(r"\b(rate|irate|increase)\(\s*" + metric, target["expr"]), (
                        f"{title}: a counter is graphed through rate() or increase()"
                    )
            queried += 1
    assert queried >= 30


def test_dashboard_covers_the_platform_metrics(
    dashboard: dict[str, Any], metrics_declared: dict[str, Any], helpers: Any
) -> None:
    assert set(metrics_declared) >= REQUIRED_METRICS, "metrics.py lost a metric"
    used: set[str] = set()
    series = {s: name for name, decl in metrics_declared.items() for s in decl.series()}
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            used |= {series[m] for m in helpers.promql_metrics_and_labels(target["expr"])[0]}
    required = REQUIRED_METRICS | set(IMAGE_METRICS) | HEALTH_METRICS
    assert used >= required, f"no panel for {sorted(required - used)}"
    if "kafka_consumer_lag" in metrics_declared:
        assert "kafka_consumer_lag" in used, "consumer lag is declared: give it a panel"


def _row_panels(dashboard: dict[str, Any], row_title: str) -> list[dict[str, Any]]:
    """The panels under a (non-collapsed) row, up to the next row."""
    found: list[dict[str, Any]] = []
    inside = False
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            inside = panel["title"] == row_title
            found.extend(panel.get("panels", []) if inside else [])
        elif inside:
            found.append(panel)
    return found


def test_image_worker_row(
    dashboard: dict[str, Any], metrics_declared: dict[str, Any], helpers: Any
) -> None:
    """Images processed and failed by reason, bytes in/out, download and compress latency
    p50/p95/p99, products by status, and the image-worker group's lag."""
    panels = _row_panels(dashboard, "Image worker")
    assert panels, "no Image worker row"
    series = {s: name for name, decl in metrics_declared.items() for s in decl.series()}
    exprs = {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in panels}
    used = {
        series[m]
        for queries in exprs.values()
        for expr in queries
        for m in helpers.promql_metrics_and_labels(expr)[0]
    }
    assert used >= set(IMAGE_METRICS) | IMAGE_ROW_SHARED

    every = [expr for queries in exprs.values() for expr in queries]
    assert any("images_processed_total" in e and "by (reason)" in e for e in every), (
        "failures by reason"
    )
    assert any("image_bytes_total" in e and "by (direction)" in e for e in every)
    for histogram in ("image_download_seconds", "image_compress_seconds"):
        quantiles = {
            match
            for e in every
            if f"{histogram}_bucket" in e
            for match in re.findall(r"histogram_quantile\(([\d.]+)", e)
        }
        assert quantiles == {"0.5", "0.95", "0.99"}, histogram

    # The lag query selects the image-worker's group, also under a topic prefix (which
    # prefixes group names too), and no other group.
    (lag,) = [e for e in every if "kafka_consumer_lag" in e]
    (pattern,) = re.findall(r'group=~"([^"]*)"', lag)
    for group in ("image-worker", "dev.image-worker", "test-1234-image-worker"):
        assert re.fullmatch(pattern, group), group
    for group in ("batcher-logs", "image-worker-x", "job-worker"):
        assert not re.fullmatch(pattern, group), group


# The job-worker's metrics (issue 9) the Jobs row must graph, with the labels it filters
# or groups by; dead-letter depth and consumer lag come from their own metrics.
JOB_METRICS = {
    "jobs_processed_total",
    "jobs_in_progress",
    "job_latency_seconds",
    "worker_retries_total",
    "worker_failures_total",
    "jobs_dead_letter_depth",
    "kafka_consumer_lag",
}


def _quantiles(exprs: list[str], histogram: str, matcher: str) -> set[str]:
    return {
        q
        for e in exprs
        if f"{histogram}_bucket" in e and matcher in e
        for q in re.findall(r"histogram_quantile\(([\d.]+)", e)
    }


def test_jobs_row(
    dashboard: dict[str, Any], metrics_declared: dict[str, Any], helpers: Any
) -> None:
    """Jobs processed by type and status, in progress, queue wait and run time
    p50/p95/p99, retries and failures of sink "jobs", dead-letter depth, and the lag of
    the job-worker's groups (on `jobs` and on the retry tiers)."""
    panels = _row_panels(dashboard, "Jobs")
    assert panels, "no Jobs row"
    assert set(metrics_declared) >= JOB_METRICS, "metrics.py lost a job metric"
    series = {s: name for name, decl in metrics_declared.items() for s in decl.series()}
    every = [target["expr"] for panel in panels for target in panel["targets"]]
    used = {series[m] for e in every for m in helpers.promql_metrics_and_labels(e)[0]}
    assert used >= JOB_METRICS, f"no Jobs panel for {sorted(JOB_METRICS - used)}"

    assert any(
        "jobs_processed_total" in e and re.search(r"by \((type, status|status, type)\)", e)
        for e in every
    )
    assert metrics_declared["jobs_processed_total"].labels == ("type", "status")
    assert "phase" in metrics_declared["job_latency_seconds"].labels
    for phase in ("queue_wait", "run"):
        matcher = f'phase="{phase}"'
        assert _quantiles(every, "job_latency_seconds", matcher) == {"0.5", "0.95", "0.99"}
    for counter in ("worker_retries_total", "worker_failures_total"):
        assert any(f'{counter}{{sink="jobs"}}' in e for e in every), counter

    (lag,) = [e for e in every if "kafka_consumer_lag" in e]
    (pattern,) = re.findall(r'group=~"([^"]*)"', lag)
    for tier in ("5s", "1m", "10m"):
        for group in (f"job-worker-retry-{tier}", f"test-12-job-worker-retry-{tier}"):
            assert re.fullmatch(pattern, group), group
    for group in ("job-worker", "dev.job-worker"):
        assert re.fullmatch(pattern, group), group
    for group in (
        "image-worker",
        "batcher-logs",
        "job-worker-x",
        "xjob-worker",
        "job-worker-retry",
    ):
        assert not re.fullmatch(pattern, group), group


def test_health_checker_row(
    dashboard: dict[str, Any], metrics_declared: dict[str, Any], helpers: Any
) -> None:
    """Probes/s by result, failures by reason, probe latency and lag p50/p99, probes in
    flight, targets (and shards) per replica, and the rate of target.down."""
    panels = _row_panels(dashboard, "Health checker")
    assert panels, "no Health checker row"
    assert set(metrics_declared) >= HEALTH_METRICS, "metrics.py lost a health-checker metric"
    series = {s: name for name, decl in metrics_declared.items() for s in decl.series()}
    every = [target["expr"] for panel in panels for target in panel["targets"]]
    used = {series[m] for expr in every for m in helpers.promql_metrics_and_labels(expr)[0]}
    assert used >= HEALTH_METRICS

    assert any("health_probes_total" in e and "by (result)" in e for e in every)
    assert any("health_probes_total" in e and "by (reason)" in e for e in every)
    assert any("health_status_changes_total" in e and "by (status)" in e for e in every), (
        "target.down / target.up apart"
    )
    for histogram in ("health_probe_latency_seconds", "health_probe_lag_seconds"):
        quantiles = {
            match
            for e in every
            if f"{histogram}_bucket" in e
            for match in re.findall(r"histogram_quantile\(([\d.]+)", e)
        }
        assert quantiles == {"0.5", "0.99"}, histogram
    for gauge in ("health_probes_in_flight", "health_targets_scheduled", "health_shards_owned"):
        (expr,) = [e for e in every if gauge in e]
        assert "by (instance)" in expr, f"{gauge}: per replica"
