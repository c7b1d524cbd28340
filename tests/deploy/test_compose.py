"""docker-compose.yml: valid Compose, and wired the way the services expect.

Validation uses the Compose Specification schema vendored in schemas/ (origin and
licence in schemas/README.md); the rest checks what a schema cannot: builds, commands,
dependencies, environment, health checks, ports and volumes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("schemas") / "compose-spec.json"
SCHEMA_SHA256 = "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c"
APP_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "ADMIN_TOKEN",
    "SERVICE_NAME",
    "ADMIN_PORT",
    "LOG_LEVEL",
    "MEDIA_ROOT",
)
INFRA = {"kafka": "apache/kafka:", "postgres": "postgres:17", "redis": "redis:7"}
# Environment variables app containers get that are not Switchyard settings.
NOT_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def _seconds(duration: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    assert "draft/2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    # No format checker: "duration", "ports" and "expose" are compose's own formats, not
    # JSON Schema's (test_durations_parse checks the durations).
    return jsonschema.Draft201909Validator(schema)


def test_vendored_schema_is_the_recorded_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_matches_the_compose_spec(validator: Any) -> None:
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_schema_rejects_mistakes(validator: Any) -> None:
    """The schema is enforced: typical mistakes in a copy of the file are errors."""
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for mutate in (
        lambda d: d["services"]["api"].__setitem__("restart_policy", "always"),
        lambda d: d["services"]["api"]["depends_on"]["kafka"].__setitem__(
            "condition", "service_ready"
        ),
        lambda d: d["services"]["kafka"]["healthcheck"].__setitem__("interval", 10),
        lambda d: d["services"]["api"].__setitem__("ports", "8080:8080"),
    ):
        broken = copy.deepcopy(raw)
        mutate(broken)
        assert list(validator.iter_errors(broken)), mutate


def test_variables_have_defaults(helpers: Any) -> None:
    """`docker compose up` works with nothing exported; overrides are honoured."""
    raw = helpers.load_compose_raw()
    helpers.interpolate(raw, {})  # raises MissingVariable for a ${X:?...} without value
    custom = helpers.interpolate(raw, {"ADMIN_TOKEN": "s3cret", "SWITCHYARD_TAG": "1.2.3"})
    assert custom["services"]["api"]["environment"]["ADMIN_TOKEN"] == "s3cret"
    assert custom["services"]["batcher"]["image"] == "switchyard/batcher:1.2.3"


def test_interpolation_rules(helpers: Any) -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert helpers.interpolate("${SET:-d}", env) == "x"
    assert helpers.interpolate("${EMPTY:-d}", env) == "d"
    assert helpers.interpolate("${EMPTY-d}", env) == ""
    assert helpers.interpolate("${UNSET-d}", env) == "d"
    assert helpers.interpolate("$$HOME ${SET}", env) == "$HOME x"
    with pytest.raises(helpers.MissingVariable):
        helpers.interpolate("${UNSET:?needed}", env)


def test_services_present(compose: dict[str, Any], helpers: Any) -> None:
    expected = set(helpers.APP_SERVICES) | set(INFRA) | {"prometheus", "grafana"}
    assert set(compose["services"]) == expected
    for name, prefix in INFRA.items():
        assert compose["services"][name]["image"].startswith(prefix)


def test_images_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image or service.get("build"), f"{name}: neither image nor build"
        if image:
            _, sep, tag = image.rpartition(":")
            assert sep and "/" not in tag and tag != "latest", f"{name}: {image}"


@pytest.mark.parametrize(
    "name",
    [
        "migrate",
        "api",
        "outbox-relay",
        "api-grpc",
        "batcher",
        "image-worker",
        "job-worker",
        "health-checker",
    ],
)
def test_app_service_build_and_command(
    name: str, compose: dict[str, Any], helpers: Any, dockerfiles: dict[str, Any]
) -> None:
    service = compose["services"][name]
    image_of = helpers.APP_SERVICES[name]
    build = service["build"]
    context = REPO / build["context"]
    assert context.resolve() == REPO, "build context is the workspace root"
    dockerfile = context / build["dockerfile"]
    assert dockerfile.resolve() == (REPO / "services" / "Dockerfile").resolve()
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) for item in args)
    assert args == {"SERVICE": image_of}, f"{name}: build args"
    assert service["image"].split(":")[0] == f"switchyard/{image_of}"
    command = service.get("command") or dockerfiles[image_of].final.last("CMD").json_args
    assert isinstance(command, list), f"{name}: exec-form command"
    scripts = helpers.image_scripts(image_of)
    assert command[0] in scripts, f"{name}: {command[0]} is not a console script of the image"
    expected = {
        "migrate": ["switchyard", "db", "upgrade"],
        "api": ["switchyard-api", "serve"],
        "outbox-relay": ["switchyard-api", "relay"],
        "api-grpc": ["switchyard-api", "grpc"],
    }.get(name, [f"switchyard-{name}"])
    assert command == expected


def test_depends_on(compose: dict[str, Any], helpers: Any, dockerfiles: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert _healthcheck(target, services[target], dockerfiles, helpers), (
                    f"{name} waits for {target} to be healthy, but it has no health check"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart") in ("no", None)
    for name in helpers.APP_SERVICES:
        if name == "migrate":
            assert services[name]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
            continue
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        for infra in INFRA:
            assert depends[infra]["condition"] == "service_healthy", f"{name} -> {infra}"


def _healthcheck(
    name: str, service: dict[str, Any], dockerfiles: dict[str, Any], helpers: Any
) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable") and bool(check.get("test"))
    image_of = helpers.APP_SERVICES.get(name)
    return bool(image_of and dockerfiles[image_of].final.last("HEALTHCHECK"))


def test_every_long_running_service_has_a_health_check(
    compose: dict[str, Any], dockerfiles: dict[str, Any], helpers: Any
) -> None:
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert _healthcheck(name, service, dockerfiles, helpers), name
    # The relay runs from the api image, whose HEALTHCHECK probes the API port: overridden.
    relay_test = " ".join(compose["services"]["outbox-relay"]["healthcheck"]["test"])
    assert "ADMIN_PORT" in relay_test and "/healthz" in relay_test


def test_durations_parse(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        durations = [service.get("stop_grace_period")]
        durations += [
            service.get("healthcheck", {}).get(key)
            for key in ("interval", "timeout", "start_period")
        ]
        for duration in filter(None, durations):
            assert re.fullmatch(r"(\d+(\.\d+)?(h|m|s|ms|us))+", duration), f"{name}: {duration}"
            assert _seconds(duration) > 0


def test_restart_and_grace_periods(compose: dict[str, Any], helpers: Any) -> None:
    for name, service in compose["services"].items():
        if name == "migrate":
            assert service["restart"] == "no"
            continue
        assert service.get("restart") in ("unless-stopped", "always"), name
        if name in helpers.APP_SERVICES:
            assert _seconds(service["stop_grace_period"]) >= 30, name
    # Rather than just above gunicorn's 30 s graceful_timeout.
    assert _seconds(compose["services"]["api"]["stop_grace_period"]) > 35


@pytest.mark.parametrize(
    "name",
    [
        "migrate",
        "api",
        "outbox-relay",
        "api-grpc",
        "batcher",
        "image-worker",
        "job-worker",
        "health-checker",
    ],
)
def test_app_environment(
    name: str,
    compose: dict[str, Any],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Every variable is a Switchyard setting (extra="ignore" would hide a typo) and the
    whole environment loads into valid Settings pointing at the compose services."""
    env = helpers.compose_environment(compose["services"][name])
    for key in APP_ENV:
        assert env.get(key), f"{name}: {key} missing"
    assert env["SERVICE_NAME"] == name
    for key in env:
        assert key in NOT_SETTINGS or helpers.is_setting(key), f"{name}: {key} is not a setting"
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    assert settings.admin_port == 9100
    assert str(settings.media_root) == "/data/media"
    # What the service writes lands on a volume (the root filesystem is read-only).
    written = {"image-worker": [settings.media_root], "batcher": [settings.batcher.jsonl_dir]}
    service = compose["services"][name]
    named = {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}
    for path in written.get(name, []):
        assert str(path) in named and named[str(path)] in compose["volumes"], (
            f"{name} writes {path}, which is on no named volume"
        )
    hosts = {
        "postgres": urlsplit(settings.database_url),
        "redis": urlsplit(settings.redis_url),
        "kafka": urlsplit(f"//{settings.kafka_bootstrap_servers}"),
    }
    for service_name, url in hosts.items():
        assert url.hostname == service_name, f"{name}: {url.geturl()}"
    assert hosts["postgres"].port == 5432 and hosts["redis"].port == 6379
    assert hosts["kafka"].port == 9092
    assert settings.kafka.replication_factor == 1, "one broker"
    if name == "api":
        assert (settings.api.host, settings.api.port) == ("0.0.0.0", 8080)


def test_database_credentials_match_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    url = urlsplit(services["api"]["environment"]["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_kafka_is_single_node_kraft(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env)
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    listeners = env["KAFKA_LISTENERS"].split(",")
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert any(item.startswith(f"{controller}://") for item in listeners)
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"]
    assert voter.rsplit(":", 1)[1] == next(
        item.rsplit(":", 1)[1] for item in listeners if item.startswith(controller)
    )
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert env[key] == "1"
    assert env["CLUSTER_ID"]
    assert any(v.endswith(":/var/lib/kafka/data") for v in compose["services"]["kafka"]["volumes"])


def test_redis_appends_only(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_published_ports_do_not_clash(compose: dict[str, Any]) -> None:
    """Each port is published once, on the loopback interface only: the stack's local
    passwords and tokens are not for other machines."""
    published: dict[str, str] = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            address, host, _ = str(port).split(":")
            assert address == "127.0.0.1", f"{name} publishes {port} on every interface"
            assert host not in published, f"{name} and {published.get(host)} both publish {host}"
            published[host] = name
    assert published == {
        "8080": "api",
        "50051": "api-grpc",
        "9090": "prometheus",
        "3000": "grafana",
    }
    assert "deploy" in compose["services"]["job-worker"]
    assert compose["services"]["job-worker"]["deploy"]["replicas"] >= 2


def test_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in declared, f"{name}: undeclared volume {source}"
                used.add(source)
            assert target.startswith("/")
    assert used == declared, f"declared but unused: {declared - used}"
    media = compose["services"]["api"]["environment"]["MEDIA_ROOT"]
    for name in ("api", "image-worker"):
        assert f"media:{media}" in compose["services"][name]["volumes"], name


def test_read_only_app_containers_have_a_writable_tmp(
    compose: dict[str, Any], helpers: Any
) -> None:
    for name in helpers.APP_SERVICES:
        service = compose["services"][name]
        if service.get("read_only"):
            assert "/tmp" in service.get("tmpfs", []), f"{name}: gunicorn and tempfile need /tmp"
