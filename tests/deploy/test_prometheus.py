"""deploy/prometheus/prometheus.yml scrapes every Switchyard service of the compose stack,
on the port that service serves /metrics on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy/prometheus/prometheus.yml"


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def _targets(job: dict[str, Any]) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, _, port = target.rpartition(":")
            found.append((host, int(port)))
    for dns in job.get("dns_sd_configs", []):
        assert dns.get("type", "SRV") == "A", "A records carry no port: set `port`"
        found.extend((name, int(dns["port"])) for name in dns["names"])
    return found


def test_structure(prometheus: dict[str, Any]) -> None:
    assert set(prometheus) <= {"global", "scrape_configs", "rule_files", "alerting"}
    jobs = [job["job_name"] for job in prometheus["scrape_configs"]]
    assert len(jobs) == len(set(jobs)), "job names are unique"
    for job in prometheus["scrape_configs"]:
        assert set(job) <= {
            "job_name",
            "metrics_path",
            "static_configs",
            "dns_sd_configs",
            "scrape_interval",
            "scrape_timeout",
            "honor_labels",
        }, job
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert _targets(job), f"{job['job_name']}: no targets"


def test_every_app_service_is_scraped_on_its_metrics_port(
    prometheus: dict[str, Any], compose: dict[str, Any], helpers: Any
) -> None:
    scraped: dict[str, int] = {}
    for job in prometheus["scrape_configs"]:
        for host, port in _targets(job):
            if host in ("localhost", "127.0.0.1"):
                continue  # Prometheus itself
            assert host in compose["services"], f"{job['job_name']}: no compose service {host}"
            assert host not in scraped, f"{host} is scraped twice"
            scraped[host] = port
    assert scraped == helpers.APP_METRICS_PORTS

    for name, port in scraped.items():
        env = helpers.compose_environment(compose["services"][name])
        served_on = env.get("API__PORT") if name == "api" else env.get("ADMIN_PORT")
        assert served_on == str(port), f"{name} serves /metrics on {served_on}, not {port}"


def test_scaled_services_are_discovered_per_replica(
    prometheus: dict[str, Any], compose: dict[str, Any]
) -> None:
    """A static target would reach one replica of a scaled service; DNS finds them all."""
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host = target.rpartition(":")[0]
                service = compose["services"].get(host, {})
                assert service.get("deploy", {}).get("replicas", 1) == 1, (
                    f"{host} runs several replicas: use dns_sd_configs"
                )


def test_prometheus_mounts_this_file(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
