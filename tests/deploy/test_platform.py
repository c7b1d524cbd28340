"""The platform examples next to the prod overlay (deploy/platform/) agree with it: the
Strimzi topics are the catalogue's, with the partitions, replicas and min.insync.replicas
the services would create them with; the KafkaUser logs in with the SASL mechanism the
services use; the CloudNativePG cluster is the database the budget is counted against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "deploy/k8s/overlays/prod"
STRIMZI = REPO / "deploy/platform/strimzi.example.yaml"


@pytest.fixture(scope="module")
def prod_settings(
    helpers: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, dict[str, str]]:
    env = helpers.container_env(helpers.kustomize_build(PROD), "job-worker")
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = helpers.load_settings_from(env, monkeypatch, tmp_path_factory.mktemp("prod"))
    return settings, env


@pytest.fixture(scope="module")
def strimzi() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(STRIMZI.read_text()) if doc]


def test_topics_are_the_catalogue(
    strimzi: list[dict[str, Any]], prod_settings: tuple[Any, dict[str, str]]
) -> None:
    from switchyard.kafka.topics import all_topic_names

    settings, env = prod_settings
    topics = {d["metadata"]["name"]: d["spec"] for d in strimzi if d["kind"] == "KafkaTopic"}
    assert set(topics) == set(all_topic_names(settings))
    replicas = int(env["KAFKA__REPLICATION_FACTOR"])
    in_sync = int(env["KAFKA__MIN_INSYNC_REPLICAS"])
    assert 1 <= in_sync < replicas, "one broker down still takes acknowledged writes"
    for name, spec in topics.items():
        assert spec["partitions"] == settings.kafka.partitions, name
        assert spec["replicas"] == replicas, name
        assert spec["config"]["min.insync.replicas"] == str(in_sync), name


def test_kafka_user_matches_the_services_login(
    strimzi: list[dict[str, Any]], prod_settings: tuple[Any, dict[str, str]]
) -> None:
    _, env = prod_settings
    (user,) = [d for d in strimzi if d["kind"] == "KafkaUser"]
    mechanism = user["spec"]["authentication"]["type"].upper()
    assert mechanism == env["KAFKA__SASL_MECHANISM"]
    assert env["KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL", "SCRAM over TLS"
    cluster = user["metadata"]["labels"]["strimzi.io/cluster"]
    host = env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0]
    assert host == f"{cluster}-kafka-bootstrap.{user['metadata']['namespace']}.svc"
    acls = {
        (acl["resource"]["type"], op)
        for acl in user["spec"]["authorization"]["acls"]
        for op in acl["operations"]
    }
    # Produce, consume and commit, create missing topics, read lag.
    assert {("topic", "Write"), ("topic", "Read"), ("topic", "Create"), ("group", "Read")} <= acls
