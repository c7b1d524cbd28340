"""The health-checker's deployment, in compose and in every kustomize target: its
HEALTH_CHECKER__ settings are set explicitly and load into Settings, the SSRF guard is off
(the monitored services are internal), a dead replica's targets are taken over well
within the default interval, the stop period covers SIGTERM's grace, probes and metrics
are on the admin port, prod (and compose) run two replicas with a disruption budget of
one, and the topics it writes are in the catalogue every service creates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import by_kind_and_name

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
TARGETS = {"base": K8S / "base", "dev": K8S / "overlays/dev", "prod": K8S / "overlays/prod"}
SERVICE = "health-checker"
# What the health-checker reads besides the common settings; each is set explicitly where
# it is deployed, so the deployed values are reviewed.
SETTINGS = (
    "HEALTH_CHECKER__LEASE_SECONDS",
    "HEALTH_CHECKER__REBALANCE_SECONDS",
    "HEALTH_CHECKER__RESYNC_SECONDS",
    "HEALTH_CHECKER__MAX_IN_FLIGHT",
    "HEALTH_CHECKER__MAX_PER_HOST",
    "HEALTH_CHECKER__GUARD",
    "HEALTH_CHECKER__FLUSH_SECONDS",
    "HEALTH_CHECKER__SHUTDOWN_GRACE_SECONDS",
)
# After SIGTERM's grace: saving progress, releasing the shards, the producer's flush.
SHUTDOWN_MARGIN_SECONDS = 10


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", duration))


def _check_settings(settings: Any) -> None:
    from switchyard.targets.records import DEFAULT_INTERVAL_SECONDS
    from switchyard_health_checker.ownership import VALIDITY

    checker = settings.health_checker
    assert checker.guard is False, "targets are internal services: no SSRF guard"
    assert settings.fetch.allow == ()
    # A renewal may be missed once without the replica dropping its targets...
    assert 2 * checker.rebalance_seconds <= checker.lease_seconds * VALIDITY
    # ...and a dead replica's targets are taken over within an interval of the default.
    assert checker.lease_seconds + checker.rebalance_seconds <= DEFAULT_INTERVAL_SECONDS / 2
    assert checker.max_per_host <= checker.max_in_flight


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"][SERVICE]  # type: ignore[no-any-return]


def test_compose_settings(
    service: dict[str, Any], helpers: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = helpers.compose_environment(service)
    for name in SETTINGS:
        assert env.get(name), f"{name} is not set for the health-checker"
    assert "FETCH__ALLOW" not in env
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    _check_settings(settings)
    grace = settings.health_checker.shutdown_grace_seconds
    assert _seconds(service["stop_grace_period"]) >= grace + SHUTDOWN_MARGIN_SECONDS


def test_compose_replicas_health_check_and_resources(service: dict[str, Any], helpers: Any) -> None:
    assert service["deploy"]["replicas"] == 2, "two replicas share the targets"
    test = " ".join(service["healthcheck"]["test"])
    assert "/healthz" in test and "ADMIN_PORT" in test
    assert helpers.compose_environment(service)["ADMIN_PORT"] == "9100"
    assert float(service["deploy"]["resources"]["limits"]["cpus"]) >= 1


# --------------------------------------------------------------------------- kubernetes


@pytest.fixture(scope="module")
def rendered(helpers: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: helpers.kustomize_build(path) for name, path in TARGETS.items()}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_settings_and_shutdown(
    target: str,
    rendered: dict[str, list[dict[str, Any]]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    index = by_kind_and_name(rendered[target])
    pod = index[("Deployment", SERVICE)]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    own = {e["name"]: e["value"] for e in container["env"]}
    for name in SETTINGS:
        assert own.get(name), f"{name} is not set on the health-checker container"
    env = helpers.container_env(rendered[target], SERVICE)
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    _check_settings(settings)
    grace = settings.health_checker.shutdown_grace_seconds
    assert pod["terminationGracePeriodSeconds"] >= grace + SHUTDOWN_MARGIN_SECONDS


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_probes_replicas_and_disruption_budget(
    target: str, rendered: dict[str, list[dict[str, Any]]], helpers: Any
) -> None:
    index = by_kind_and_name(rendered[target])
    deployment = index[("Deployment", SERVICE)]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["admin"] == 9100
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"

    budget = index[("PodDisruptionBudget", SERVICE)]["spec"]
    assert budget["maxUnavailable"] == 1
    labels = pod["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    if target == "prod":
        (scaled,) = [
            r
            for r in rendered[target]
            if r["kind"] == "ScaledObject" and r["spec"]["scaleTargetRef"]["name"] == SERVICE
        ]
        assert scaled["spec"]["minReplicaCount"] >= 2, "two replicas share the targets"
        limit = container["resources"]["limits"]["cpu"]
        assert float(limit.removesuffix("m")) / (1000 if limit.endswith("m") else 1) >= 1


def test_topics_are_in_the_catalogue(
    helpers: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Results go to `health` (the batcher stores them), status changes to `targets`;
    both are created at start by every service (and `switchyard dev`)."""
    from switchyard.kafka.topics import CATALOGUE, all_topic_names

    names = all_topic_names(helpers.load_settings_from({}, monkeypatch, tmp_path))
    assert {"health", "targets"} <= set(names)
    topics = {topic.name: topic for topic in CATALOGUE}
    assert "target.checked" in topics["health"].event_types
    assert SERVICE in topics["health"].producers and "batcher" in topics["health"].consumers
    assert {"target.down", "target.up"} <= set(topics["targets"].event_types)
    assert SERVICE in topics["targets"].producers
