"""The image-worker's deployment, in compose and in every kustomize target: its media
volume is persistent and shared with the API, its settings are the FETCH__ and
IMAGE_WORKER__ ones it reads, its memory fits Pillow's worst case under those settings,
and the topics it consumes are created by the platform's topic catalogue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import by_kind_and_name

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
TARGETS = {"base": K8S / "base", "dev": K8S / "overlays/dev", "prod": K8S / "overlays/prod"}
SERVICE = "image-worker"
MEDIA_ROOT = "/data/media"
# What the image-worker reads besides the common settings (the brief of issue 8); each
# must be set explicitly where it is deployed, so the deployed values are reviewed.
SETTINGS = (
    "FETCH__MAX_CONCURRENCY",
    "FETCH__MAX_PER_HOST",
    "FETCH__TOTAL_TIMEOUT_SECONDS",
    "FETCH__MAX_BYTES",
    "IMAGE_WORKER__LONGEST_SIDE",
    "IMAGE_WORKER__FORMAT",
    "IMAGE_WORKER__QUALITY",
    "IMAGE_WORKER__MAX_PIXELS",
)
MIB = 1024**2
# The interpreter, librdkafka, SQLAlchemy, Pillow's code: what the process holds idle.
PROCESS_BASELINE = 256 * MIB
RGBA = 4  # bytes per decoded pixel at worst (PNG/WebP with alpha)


def _quantity(value: str | int | float) -> float:
    """A Kubernetes quantity: ``512Mi``, ``2Gi``, ``500m``, ``2``."""
    units = {"Ki": 1024, "Mi": MIB, "Gi": 1024**3, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    match = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(value).strip())
    assert match, value
    return float(match.group(1)) * (units[match.group(2)] if match.group(2) else 1)


def _compose_bytes(value: str | int) -> float:
    """A compose byte value: ``1536M``, ``2g``, ``1024k`` (binary units, as Docker reads them)."""
    units = {"": 1, "b": 1, "k": 1024, "m": MIB, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([bkmg]?)b?", str(value).strip().lower())
    assert match, value
    return int(match.group(1)) * units[match.group(2)]


def _worst_case_memory(settings: Any, cpus: float) -> float:
    """Bodies of the downloads in flight, one decoded image per core, the process."""
    downloads = settings.fetch.max_concurrency * settings.fetch.max_bytes
    decoded = max(1, int(cpus)) * settings.image_worker.max_pixels * RGBA
    return PROCESS_BASELINE + downloads + decoded


def test_quantities() -> None:
    assert _quantity("512Mi") == 512 * MIB
    assert _quantity("2Gi") == 2048 * MIB
    assert _quantity("500m") == 0.5
    assert _quantity("2") == 2
    assert _compose_bytes("1536M") == 1536 * MIB  # compose: M is MiB
    assert _compose_bytes("2gb") == 2048 * MIB


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"][SERVICE]  # type: ignore[no-any-return]


def test_compose_media_is_a_named_volume_shared_with_the_api(
    service: dict[str, Any], compose: dict[str, Any], helpers: Any
) -> None:
    env = helpers.compose_environment(service)
    assert env["MEDIA_ROOT"] == MEDIA_ROOT
    mounts = {v.split(":")[1]: v for v in service["volumes"]}
    volume = mounts[MEDIA_ROOT].split(":")
    assert volume[0] in compose["volumes"], "a named volume: it outlives the container"
    assert volume[2:] != ["ro"], "the image-worker writes there"
    api_mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["api"]["volumes"]}
    assert api_mounts[MEDIA_ROOT] == volume[0], "the API reads the same files"
    assert helpers.compose_environment(compose["services"]["api"])["MEDIA_ROOT"] == MEDIA_ROOT


def test_compose_health_check_probes_the_admin_port(service: dict[str, Any], helpers: Any) -> None:
    test = " ".join(service["healthcheck"]["test"])
    assert "/healthz" in test and "ADMIN_PORT" in test
    assert helpers.compose_environment(service)["ADMIN_PORT"] == "9100"


def test_compose_settings(
    service: dict[str, Any], helpers: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = helpers.compose_environment(service)
    for name in SETTINGS:
        assert env.get(name), f"{name} is not set for the image-worker"
    assert env["FETCH__ALLOW"] == "", "no private address is fetched unless asked"
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    assert settings.fetch.allow == ()
    assert settings.image_worker.format == "jpeg" and settings.image_worker.quality == 82
    assert settings.image_worker.longest_side == 1600

    limits = service["deploy"]["resources"]["limits"]
    cpus = _quantity(limits["cpus"])
    assert _compose_bytes(limits["memory"]) >= _worst_case_memory(settings, cpus)


def test_compose_fetch_allow_is_passed_through(helpers: Any) -> None:
    """`FETCH__ALLOW=10.0.0.0/8 docker compose up`: the guard lets that network through."""
    raw = helpers.load_compose_raw()
    custom = helpers.interpolate(raw, {"FETCH__ALLOW": "10.0.0.0/8,127.0.0.1/32"})
    env = helpers.compose_environment(custom["services"][SERVICE])
    assert env["FETCH__ALLOW"] == "10.0.0.0/8,127.0.0.1/32"
    for name, other in custom["services"].items():
        if name not in (SERVICE, "job-worker") and "environment" in other:
            assert "FETCH__ALLOW" not in helpers.compose_environment(other), name


# --------------------------------------------------------------------------- kubernetes


@pytest.fixture(scope="module")
def rendered(helpers: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: helpers.kustomize_build(path) for name, path in TARGETS.items()}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_media_claim(target: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The media volume is ReadWriteOnce (most managed clusters offer no ReadWriteMany):
    only the image-worker mounts it (the API never reads the files), and its replicas
    are kept on the node that mounts it."""
    index = by_kind_and_name(rendered[target])
    pod = index[("Deployment", SERVICE)]["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert not mounts[MEDIA_ROOT].get("readOnly")
    volumes = {v["name"]: v for v in spec["volumes"]}
    claim_name = volumes[mounts[MEDIA_ROOT]["name"]]["persistentVolumeClaim"]["claimName"]
    assert spec["securityContext"]["fsGroup"] == 10001, "the volume is writable by uid 10001"
    claim = index[("PersistentVolumeClaim", claim_name)]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (together,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert together["topologyKey"] == "kubernetes.io/hostname"
    assert together["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for resource in rendered[target]:
        if resource["kind"] == "Deployment" and resource["metadata"]["name"] != SERVICE:
            claims = [
                v["persistentVolumeClaim"]["claimName"]
                for v in resource["spec"]["template"]["spec"]["volumes"]
                if "persistentVolumeClaim" in v
            ]
            assert claim_name not in claims, f"{resource['metadata']['name']} mounts the media"
    assert "sizeLimit" in volumes[mounts["/tmp"]["name"]]["emptyDir"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_probes_on_the_admin_port(
    target: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    pod = by_kind_and_name(rendered[target])[("Deployment", SERVICE)]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["admin"] == 9100
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    service = by_kind_and_name(rendered[target])[("Service", SERVICE)]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["admin"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_k8s_settings_and_resources_fit_pillow(
    target: str,
    rendered: dict[str, list[dict[str, Any]]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    index = by_kind_and_name(rendered[target])
    (container,) = index[("Deployment", SERVICE)]["spec"]["template"]["spec"]["containers"]
    own = {e["name"]: e["value"] for e in container["env"]}
    for name in SETTINGS:
        assert own.get(name), f"{name} is not set on the image-worker container"
    env = helpers.container_env(rendered[target], SERVICE)
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    assert str(settings.media_root) == MEDIA_ROOT
    assert settings.fetch.allow == (), "no private address is fetched unless asked"

    resources = container["resources"]
    limit_cpu = _quantity(resources["limits"]["cpu"])
    request_cpu = _quantity(resources["requests"]["cpu"])
    assert request_cpu >= 0.5, "compression is CPU work: at least half a core"
    assert _quantity(resources["limits"]["memory"]) >= _worst_case_memory(settings, limit_cpu)
    assert _quantity(resources["requests"]["memory"]) >= 512 * MIB


def test_topics_are_created_with_their_dead_letter_queue(
    helpers: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The image-worker's topics come from the catalogue every service (and `switchyard
    dev`) creates at start; compose and the dev overlay's broker would also auto-create
    them, production brokers usually do not."""
    from switchyard.kafka.topics import CATALOGUE, all_topic_names

    names = all_topic_names(helpers.load_settings_from({}, monkeypatch, tmp_path))
    assert {"products", "products.dlq"} <= set(names)
    (products,) = [topic for topic in CATALOGUE if topic.name == "products"]
    assert "product.created" in products.event_types
    assert SERVICE in products.consumers and products.has_dlq
