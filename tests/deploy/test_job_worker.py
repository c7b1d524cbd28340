"""The job-worker's deployment, in compose and in every kustomize target: its JOBS__
settings are set where it runs and load, a stopped replica has the time to hand its
running jobs back before it is killed, its probes are on the admin port, the topics it
consumes come from the platform's catalogue, and the prod overlay's KEDA scales it on
its consumer group's lag on `jobs`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from .conftest import by_kind_and_name

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
TARGETS = {
    "base": K8S / "base",
    "dev": K8S / "overlays/dev",
    "prod": K8S / "overlays/prod",
}
SERVICE = "job-worker"
# The job-worker's settings that change how it runs and stops: set explicitly wherever it
# is deployed, so the deployed values are reviewed rather than inherited by accident.
SETTINGS = (
    "JOBS__POOL_SIZE",
    "JOBS__LEASE_SECONDS",
    "JOBS__SHUTDOWN_GRACE_SECONDS",
    "JOBS__LIMITS",
)
# After the grace for running jobs: the hand-back of the rest (one transaction), the last
# results (one batch), leaving the consumer groups, the producer's flush.
HAND_BACK_SECONDS = 15
# The consumer groups of the job-worker (services/job-worker/DESIGN.md, "Topics").
GROUP = "job-worker"
RETRY_GROUPS = ("job-worker-retry-5s", "job-worker-retry-1m", "job-worker-retry-10m")


def _seconds(duration: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"][SERVICE]  # type: ignore[no-any-return]


def test_compose_settings_and_grace(
    service: dict[str, Any], helpers: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = helpers.compose_environment(service)
    for name in SETTINGS:
        assert env.get(name), f"{name} is not set for the job-worker"
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    jobs = settings.jobs
    assert jobs.pool_size == 64
    assert jobs.limits, "JOBS__LIMITS parses into per-type limits"
    from switchyard.jobs.types import CATALOGUE

    assert set(jobs.limits) <= set(CATALOGUE), "limits name job types that exist"
    grace = _seconds(service["stop_grace_period"])
    assert grace >= jobs.shutdown_grace_seconds + HAND_BACK_SECONDS, (
        "docker sends SIGKILL before running jobs had their grace and the rest went back"
    )


def test_compose_replicas_probe_and_restart(service: dict[str, Any], helpers: Any) -> None:
    """Two replicas: the scheduler leader fails over, and jobs spread over both."""
    assert service["deploy"]["replicas"] >= 2
    test = " ".join(service["healthcheck"]["test"])
    assert "/healthz" in test and "ADMIN_PORT" in test
    assert helpers.compose_environment(service)["ADMIN_PORT"] == "9100"
    assert service["restart"] == "unless-stopped"
    assert "ports" not in service, "replicas cannot publish the same port"


# --------------------------------------------------------------------------- kubernetes


@pytest.fixture(scope="module")
def rendered(helpers: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: helpers.kustomize_build(path) for name, path in TARGETS.items()}


def _settings(
    resources: list[dict[str, Any]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> tuple[Any, dict[str, str]]:
    index = by_kind_and_name(resources)
    (container,) = index[("Deployment", SERVICE)]["spec"]["template"]["spec"]["containers"]
    own = {e["name"]: e["value"] for e in container["env"]}
    env = helpers.container_env(resources, SERVICE)
    return helpers.load_settings_from(env, monkeypatch, tmp_path), own


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_settings_and_termination_grace(
    target: str,
    rendered: dict[str, list[dict[str, Any]]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    index = by_kind_and_name(rendered[target])
    settings, own = _settings(rendered[target], helpers, monkeypatch, tmp_path)
    for name in SETTINGS:
        assert own.get(name), f"{name} is not set on the job-worker container"
    spec = index[("Deployment", SERVICE)]["spec"]["template"]["spec"]
    assert (
        spec["terminationGracePeriodSeconds"]
        >= settings.jobs.shutdown_grace_seconds + HAND_BACK_SECONDS
    ), "the kubelet sends SIGKILL before running jobs had their grace"
    # A killed pod's jobs wait one lease before they run again: keep that short next to
    # the grace a stopping pod gets.
    assert settings.jobs.lease_seconds <= spec["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_probes_on_the_admin_port(
    target: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    index = by_kind_and_name(rendered[target])
    pod = index[("Deployment", SERVICE)]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["admin"] == 9100
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    service = index[("Service", SERVICE)]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["admin"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_disruption_budget(target: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Node drains evict one replica at a time; each hands its jobs back first."""
    index = by_kind_and_name(rendered[target])
    labels = index[("Deployment", SERVICE)]["spec"]["template"]["metadata"]["labels"]
    pdb = index[("PodDisruptionBudget", SERVICE)]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_topics_come_from_the_catalogue(
    helpers: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`jobs`, the three retry tiers and `jobs.dlq` are created at start by every
    service (and `switchyard dev`); the retry tiers have no dead-letter topic of their
    own: a job that fails its last attempt goes to `jobs.dlq`."""
    from switchyard.kafka.topics import all_topic_names, job_topics

    settings = helpers.load_settings_from({}, monkeypatch, tmp_path)
    topics = job_topics(settings)
    expected = {"jobs", "jobs.retry-5s", "jobs.retry-1m", "jobs.retry-10m", "jobs.dlq"}
    assert {topics.jobs, topics.dead, *(name for name, _ in topics.retry_tiers)} == expected
    names = all_topic_names(settings)
    assert expected <= set(names)
    assert not any(n.startswith("jobs.retry") and n.endswith(".dlq") for n in names)
    delays = [delay for _, delay in topics.retry_tiers]
    assert delays == sorted(delays), "the shortest tier first"


# --------------------------------------------------------------------------- KEDA


@pytest.fixture(scope="module")
def scaled_object(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (found,) = [
        r
        for r in rendered["prod"]
        if r["kind"] == "ScaledObject" and r["spec"]["scaleTargetRef"]["name"] == SERVICE
    ]
    return found


def test_keda_only_in_prod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Clusters without KEDA apply base or dev: no custom resource there."""
    for target in ("base", "dev"):
        assert all(r["apiVersion"] != "keda.sh/v1alpha1" for r in rendered[target]), target


def test_keda_scaled_object_fields(scaled_object: dict[str, Any], helpers: Any) -> None:
    assert scaled_object["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled_object["spec"]
    assert set(spec) <= helpers.SCALED_OBJECT_SPEC, sorted(set(spec) - helpers.SCALED_OBJECT_SPEC)
    for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec[key], int) and spec[key] >= 0, key
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert set(metadata) <= helpers.KAFKA_SCALER_METADATA, sorted(
        set(metadata) - helpers.KAFKA_SCALER_METADATA
    )
    # The CRD declares metadata as a map of strings: a YAML number or boolean is refused.
    assert all(isinstance(value, str) for value in metadata.values()), metadata
    assert int(metadata["lagThreshold"]) > 0
    assert int(metadata["activationLagThreshold"]) >= 0
    assert metadata["offsetResetPolicy"] in ("earliest", "latest")
    assert metadata["allowIdleConsumers"] in ("true", "false")


def test_keda_hpa_behaviour_is_a_valid_hpa_behaviour(scaled_object: dict[str, Any]) -> None:
    """KEDA copies `advanced.horizontalPodAutoscalerConfig.behavior` into the HPA it
    creates: validated here as part of an autoscaling/v2 HPA."""
    behavior = scaled_object["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-job-worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVICE},
            "minReplicas": 2,
            "maxReplicas": 6,
            "behavior": behavior,
        },
    }
    for version in ("1.30.0", "1.37.0"):
        kubernetes_validate.validate(hpa, version, strict=True)


def test_keda_scales_the_job_worker_on_its_lag(
    scaled_object: dict[str, Any],
    rendered: dict[str, list[dict[str, Any]]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The target is the job-worker Deployment, which leaves its replicas to KEDA's HPA;
    the trigger reads the lag of the group the worker consumes `jobs` with, on the broker
    and under the topic name the worker uses, and never scales beyond the partitions."""
    index = by_kind_and_name(rendered["prod"])
    deployment = index[("Deployment", SERVICE)]
    assert scaled_object["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert scaled_object["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": SERVICE,
    }
    assert "replicas" not in deployment["spec"], "KEDA's HPA owns the replicas"
    assert not any(
        r["kind"] == "HorizontalPodAutoscaler" and r["spec"]["scaleTargetRef"]["name"] == SERVICE
        for r in rendered["prod"]
    ), "a second autoscaler would fight KEDA's"

    settings, _ = _settings(rendered["prod"], helpers, monkeypatch, tmp_path)
    from switchyard.kafka.topics import job_topics

    metadata = scaled_object["spec"]["triggers"][0]["metadata"]
    assert metadata["bootstrapServers"] == settings.kafka_bootstrap_servers
    assert metadata["topic"] == job_topics(settings).jobs
    assert metadata["consumerGroup"] == settings.kafka.topic_prefix + GROUP
    assert metadata["consumerGroup"] not in RETRY_GROUPS, "retry tiers wait on purpose"
    spec = scaled_object["spec"]
    assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= settings.kafka.partitions


def test_compose_fetch_allow_is_its_own(helpers: Any) -> None:
    """http.request jobs reach private addresses only when asked, through a variable of
    their own: allowing the image-worker's mirror does not open webhooks to it."""
    raw = helpers.load_compose_raw()
    plain = helpers.compose_environment(helpers.interpolate(raw, {})["services"][SERVICE])
    assert plain["FETCH__ALLOW"] == ""
    images = helpers.interpolate(raw, {"FETCH__ALLOW": "10.0.0.0/8"})
    assert helpers.compose_environment(images["services"][SERVICE])["FETCH__ALLOW"] == ""
    own = helpers.interpolate(raw, {"JOB_WORKER_FETCH_ALLOW": "172.16.0.0/12"})
    env = helpers.compose_environment(own["services"][SERVICE])
    assert env["FETCH__ALLOW"] == "172.16.0.0/12"
    assert helpers.compose_environment(own["services"]["image-worker"])["FETCH__ALLOW"] == ""


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_fetches_public_addresses_only(
    target: str,
    rendered: dict[str, list[dict[str, Any]]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings, _ = _settings(rendered[target], helpers, monkeypatch, tmp_path)
    assert settings.fetch.allow == ()
