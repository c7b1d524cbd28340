"""Production monitoring: the PodMonitor scrapes every Switchyard process on the admin
port it serves /metrics on, and every alert of the PrometheusRule is one the on-call
list asks for, is documented in the README, and names only metrics (and labels of those
metrics) that the code declares, so no alert silently watches a series nobody exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "deploy/k8s/overlays/prod"
# The on-call situations (issue 12) and the alerts that cover them.
REQUIRED_ALERTS = {
    "ingest refusing": "SwitchyardIngestRefusing",
    "consumer lag growing": "SwitchyardConsumerLagGrowing",
    "dead letters appearing": "SwitchyardDeadLetters",
    "jobs dying": "SwitchyardJobsDying",
    "probes failing": "SwitchyardHealthProbesFailing",
    "processes not answering": "SwitchyardProcessDown",
    "outbox backlog": "SwitchyardOutboxBacklog",
    "coupon 503s": "SwitchyardCouponUnavailable",
}
# Series Prometheus makes itself for every scrape target, and the labels a PodMonitor
# target carries (the Operator's and our relabelling) besides a metric's own.
SCRAPE_SERIES = {"up"}
TARGET_LABELS = {"namespace", "pod", "container", "service", "endpoint"}
SEVERITIES = {"critical", "warning"}


@pytest.fixture(scope="module")
def prod(helpers: Any) -> list[dict[str, Any]]:
    return helpers.kustomize_build(PROD)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rules(prod: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (rule,) = [r for r in prod if r["kind"] == "PrometheusRule"]
    return [each for group in rule["spec"]["groups"] for each in group["rules"]]


def unknown_names(expr: str, metrics: dict[str, Any], helpers: Any) -> list[str]:
    """The metric and label names of ``expr`` that the code does not export."""
    series = {s: decl for decl in metrics.values() for s in decl.series()}
    used, labels = helpers.promql_metrics_and_labels(expr)
    problems = sorted(m for m in used - set(series) - SCRAPE_SERIES)
    known = helpers.BUILTIN_LABELS | TARGET_LABELS
    known = known.union(*(series[m].labels for m in used if m in series))
    problems += sorted(f"label {label}" for label in labels - known)
    return problems


def test_alerts_name_exported_metrics(
    rules: list[dict[str, Any]], metrics_declared: dict[str, Any], helpers: Any
) -> None:
    for rule in rules:
        problems = unknown_names(rule["expr"], metrics_declared, helpers)
        assert not problems, f"{rule['alert']}: {problems} exported by no code"
        used, _ = helpers.promql_metrics_and_labels(rule["expr"])
        for metric in used - SCRAPE_SERIES:
            kind = {s: d.kind for d in metrics_declared.values() for s in d.series()}[metric]
            if kind == "Counter":
                assert re.search(r"\b(rate|irate|increase)\(\s*" + metric, rule["expr"]), (
                    f"{rule['alert']}: a counter only means something through rate()"
                )


def test_an_alert_on_an_unexported_metric_fails(
    metrics_declared: dict[str, Any], helpers: Any
) -> None:
    assert unknown_names("sum(rate(coupon_claims_failed_total[5m])) > 0", metrics_declared, helpers)
    assert unknown_names('sum(rate(dead_letters_total{group="x"}[5m]))', metrics_declared, helpers)
    assert not unknown_names("sum(rate(dead_letters_total[5m])) > 0", metrics_declared, helpers)


def test_metric_declarations_are_found_in_services_too(helpers: Any, tmp_path: Path) -> None:
    """A metric a service declares in its own module counts as exported."""
    module = tmp_path / "gauges.py"
    module.write_text('from prometheus_client import Gauge\nq = Gauge("queue_depth", "d", ["q"])\n')
    found = helpers.declared_metrics([module])
    assert found["queue_depth"].labels == ("q",)
    assert any("switchyard_job_worker" in str(p) for p in helpers.metric_sources())


def test_the_on_call_alerts_exist_and_are_documented(rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names are unique"
    missing = {need: alert for need, alert in REQUIRED_ALERTS.items() if alert not in names}
    assert not missing, f"no alert for {missing}"
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Running in production") :]
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert f"`{rule['alert']}`" in section, f"{rule['alert']}: what to do, in the README"


def test_alert_label_values_exist_in_the_code() -> None:
    """The label values the alerts filter on are ones the code sets."""
    api = REPO / "services/api/src/switchyard_api"
    publisher = (api / "ingest/publisher.py").read_text()
    assert 'kind, "overloaded")' in publisher and 'kind, "kafka")' in publisher
    coupons = (api / "coupons/routes.py").read_text()
    assert '"/api/coupons' in coupons and "503" in coupons
    assert 'sink="jobs"' in (REPO / "shared/src/switchyard/metrics.py").read_text()


def test_pod_monitor_scrapes_every_process_on_its_admin_port(
    prod: list[dict[str, Any]],
) -> None:
    (monitor,) = [r for r in prod if r["kind"] == "PodMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    deployments = [r for r in prod if r["kind"] == "Deployment"]
    assert len(deployments) == 7
    for deployment in deployments:
        pod = deployment["spec"]["template"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        ports = {
            p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]
        }
        assert ports.get(endpoint["port"]) == 9100, deployment["metadata"]["name"]
    config = next(r for r in prod if r["kind"] == "ConfigMap")["data"]
    assert config["API__PUBLIC_METRICS"] == "false", "/metrics stays off the public port"
