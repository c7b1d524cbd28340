"""Production autoscaling: every worker Deployment has a KEDA ScaledObject, and nothing
else owns its replicas; each Kafka consumer scales on the lag of the consumer groups its
code joins, reaches the brokers the way the services do (same address, SASL mechanism,
TLS and CA, credentials from the same Secret), and never scales beyond the partitions
its groups can use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "deploy/k8s/overlays/prod"
SERVICES = REPO / "services"
# Worker -> the consumer groups it joins: (group, topic, the setting holding the consumer
# threads one replica runs in that group, or None for one), and the source that names
# the group, which the test reads so that a renamed group fails here.
CONSUMERS: dict[str, list[tuple[str, str, str | None]]] = {
    "batcher": [
        ("batcher-logs", "logs", "batcher.logs.workers"),
        ("batcher-health", "health", "batcher.health.workers"),
    ],
    "image-worker": [("image-worker", "products", None)],
    "job-worker": [("job-worker", "jobs", None)],
}
GROUP_SOURCES = {
    "batcher": ("batcher/src/switchyard_batcher/service.py", 'batcher-{topic.name}"'),
    "image-worker": ("image-worker/src/switchyard_image_worker/service.py", 'image-worker"'),
    "job-worker": ("job-worker/src/switchyard_job_worker/service.py", 'job-worker",'),
}
# The workers that consume no topic, and the trigger they scale on instead.
NOT_CONSUMERS = {"health-checker": "cpu"}
# KAFKA__SASL_MECHANISM -> the kafka scaler's `sasl`.
SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


@pytest.fixture(scope="module")
def prod(helpers: Any) -> list[dict[str, Any]]:
    return helpers.kustomize_build(PROD)  # type: ignore[no-any-return]


def _workers(resources: list[dict[str, Any]]) -> list[str]:
    return sorted(
        r["metadata"]["name"]
        for r in resources
        if r["kind"] == "Deployment"
        and r["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
        == "worker"
    )


def _scaled_objects(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for resource in resources:
        if resource["kind"] == "ScaledObject":
            target = resource["spec"]["scaleTargetRef"]["name"]
            assert target not in found, f"two ScaledObjects scale {target}"
            found[target] = resource
    return found


def check_every_worker_is_scaled(resources: list[dict[str, Any]]) -> None:
    workers = _workers(resources)
    assert set(workers) == set(CONSUMERS) | set(NOT_CONSUMERS), "a worker this test ignores"
    scaled = _scaled_objects(resources)
    deployments = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Deployment"}
    for worker in workers:
        assert worker in scaled, f"{worker} has no ScaledObject"
        assert "replicas" not in deployments[worker]["spec"], f"KEDA owns {worker}'s replicas"
        assert scaled[worker]["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": worker,
        }
        assert (
            scaled[worker]["metadata"]["namespace"] == deployments[worker]["metadata"]["namespace"]
        )
    fighting = [
        r["spec"]["scaleTargetRef"]["name"]
        for r in resources
        if r["kind"] == "HorizontalPodAutoscaler" and r["spec"]["scaleTargetRef"]["name"] in scaled
    ]
    assert not fighting, f"a second autoscaler would fight KEDA's: {fighting}"


def test_every_worker_has_a_scaled_object(prod: list[dict[str, Any]]) -> None:
    check_every_worker_is_scaled(prod)


def test_a_worker_without_a_scaled_object_fails(prod: list[dict[str, Any]]) -> None:
    """The check above, on the prod render less the job-worker's ScaledObject."""
    mutated = [
        r
        for r in prod
        if not (r["kind"] == "ScaledObject" and r["metadata"]["name"] == "job-worker")
    ]
    with pytest.raises(AssertionError, match="job-worker has no ScaledObject"):
        check_every_worker_is_scaled(mutated)


@pytest.mark.parametrize("worker", sorted(CONSUMERS))
def test_groups_are_the_ones_the_code_joins(worker: str) -> None:
    path, spelled = GROUP_SOURCES[worker]
    assert spelled in (SERVICES / path).read_text(), f"{worker}: its group is named elsewhere"


def _setting(settings: Any, dotted: str | None) -> int:
    value: Any = settings
    for part in (dotted or "").split(".") if dotted else []:
        value = getattr(value, part)
    return int(value) if dotted else 1


@pytest.mark.parametrize("worker", sorted(CONSUMERS))
def test_kafka_triggers(
    worker: str,
    prod: list[dict[str, Any]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    scaled = _scaled_objects(prod)[worker]
    spec = scaled["spec"]
    assert set(spec) <= helpers.SCALED_OBJECT_SPEC
    env = helpers.container_env(prod, worker)
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    triggers = spec["triggers"]
    assert all(t["type"] == "kafka" for t in triggers)
    seen = set()
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert set(metadata) <= helpers.KAFKA_SCALER_METADATA
        assert all(isinstance(value, str) for value in metadata.values()), metadata
        seen.add((metadata["consumerGroup"], metadata["topic"]))
        assert metadata["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
        assert metadata["allowIdleConsumers"] == "false"
        assert int(metadata["lagThreshold"]) > 0
        protocol = env.get("KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
        if protocol.startswith("SASL_"):
            assert metadata["sasl"] == SASL[env["KAFKA__SASL_MECHANISM"]]
        else:
            assert "sasl" not in metadata
        assert (metadata.get("tls") == "enable") == protocol.endswith("SSL")
        if protocol != "PLAINTEXT":
            assert trigger["authenticationRef"]["name"], "credentials for the lag reader"
    prefix = settings.kafka.topic_prefix
    expected = {(prefix + group, prefix + topic) for group, topic, _ in CONSUMERS[worker]}
    assert seen == expected, "one trigger per consumer group, on the topic it consumes"
    # A replica runs `threads` members of a group; members beyond the partitions idle.
    for _, _, threads in CONSUMERS[worker]:
        members = _setting(settings, threads)
        assert spec["maxReplicaCount"] * members <= settings.kafka.partitions, worker
    assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_trigger_authentication_reads_the_services_credentials(
    prod: list[dict[str, Any]], helpers: Any
) -> None:
    """KEDA logs in as the services do: the same Secret keys, and the CA bundle the pods
    mount at KAFKA__SSL_CA_LOCATION."""
    auths = {r["metadata"]["name"]: r for r in prod if r["kind"] == "TriggerAuthentication"}
    env = helpers.container_env(prod, "job-worker")
    ca_path = Path(env["KAFKA__SSL_CA_LOCATION"])
    pod = next(
        r for r in prod if r["kind"] == "Deployment" and r["metadata"]["name"] == "job-worker"
    )
    spec = pod["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == ca_path.parent)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    for trigger in (t for s in _scaled_objects(prod).values() for t in s["spec"]["triggers"]):
        if trigger["type"] != "kafka":
            continue
        refs = {
            ref["parameter"]: (ref["name"], ref["key"])
            for ref in auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
        }
        assert refs["username"] == (helpers.APP_SECRET, "KAFKA__SASL_USERNAME")
        assert refs["password"] == (helpers.APP_SECRET, "KAFKA__SASL_PASSWORD")
        assert refs["ca"] == (volume["secret"]["secretName"], ca_path.name)
        assert {"KAFKA__SASL_USERNAME", "KAFKA__SASL_PASSWORD"} <= helpers.external_secret_keys()


def test_cpu_scaled_workers_request_cpu(prod: list[dict[str, Any]]) -> None:
    """KEDA's cpu trigger is a utilisation of the containers' requests."""
    scaled = _scaled_objects(prod)
    for worker, kind in NOT_CONSUMERS.items():
        (trigger,) = scaled[worker]["spec"]["triggers"]
        assert trigger["type"] == kind and trigger["metricType"] == "Utilization"
        assert 0 < int(trigger["metadata"]["value"]) <= 100
        pod = next(r for r in prod if r["kind"] == "Deployment" and r["metadata"]["name"] == worker)
        for container in pod["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"]["cpu"]
