"""The librdkafka settings every Kafka client gets from KAFKA__* (security, topics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.config import ConfigError, load_settings
from switchyard.kafka.client_config import common_config


def test_plaintext_by_default_with_nothing_sasl() -> None:
    config = common_config(load_settings(), "test")
    assert config["security.protocol"] == "plaintext"
    assert not {k for k in config if k.startswith(("sasl.", "ssl."))}


def test_sasl_ssl_gives_mechanism_credentials_and_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_username": "switchyard-api",
            "sasl_password": "s3cr3t-from-the-secret",
            "ssl_ca_location": str(ca),
        }
    )
    config = common_config(settings, "producer")
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "switchyard-api"
    assert config["sasl.password"] == "s3cr3t-from-the-secret"
    assert config["ssl.ca.location"] == str(ca)
    assert "s3cr3t" not in repr(settings.kafka), "the password is a SecretStr"


def test_ssl_without_sasl_has_no_credentials(tmp_path: Path) -> None:
    settings = load_settings(kafka={"security_protocol": "SSL", "sasl_username": "ignored"})
    config = common_config(settings, "consumer")
    assert config["security.protocol"] == "ssl"
    assert "sasl.username" not in config and "ssl.ca.location" not in config


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA__SASL_USERNAME", "u")
    monkeypatch.setenv("KAFKA__SASL_PASSWORD", "p")
    config = common_config(load_settings(), "admin")
    assert (config["security.protocol"], config["sasl.mechanism"]) == (
        "sasl_plaintext",
        "SCRAM-SHA-256",
    )
    assert (config["sasl.username"], config["sasl.password"]) == ("u", "p")


def test_sasl_without_credentials_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "KAFKA__SASL_USERNAME is required" in str(caught.value)
    assert "KAFKA__SASL_PASSWORD is required" in str(caught.value)


def test_a_missing_ca_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    monkeypatch.setenv("KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA__SSL_CA_LOCATION", str(missing))
    with pytest.raises(ConfigError, match=f"KAFKA__SSL_CA_LOCATION=.*no such file: {missing}"):
        load_settings()


def test_unknown_protocol_and_mechanism_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA__SECURITY_PROTOCOL", "TLS")
    monkeypatch.setenv("KAFKA__SASL_MECHANISM", "GSSAPI")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "KAFKA__SECURITY_PROTOCOL='TLS'" in str(caught.value)
    assert "KAFKA__SASL_MECHANISM='GSSAPI'" in str(caught.value)


@pytest.mark.parametrize(("replication", "expected"), [(1, 1), (2, 1), (3, 2), (5, 2)])
def test_min_insync_replicas_default(replication: int, expected: int) -> None:
    settings = load_settings(kafka={"replication_factor": replication})
    assert settings.kafka.topic_min_insync_replicas == expected


def test_min_insync_replicas_above_replication_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA__REPLICATION_FACTOR", "2")
    monkeypatch.setenv("KAFKA__MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(ConfigError, match="KAFKA__MIN_INSYNC_REPLICAS \\(3\\) is above"):
        load_settings()
    monkeypatch.setenv("KAFKA__MIN_INSYNC_REPLICAS", "2")
    assert load_settings().kafka.topic_min_insync_replicas == 2
