"""deploy/k8s: the base and both overlays render, every rendered object validates
against the Kubernetes OpenAPI schemas bundled with kubernetes-validate (strict, offline),
and the manifests are wired the way the services and the images expect.

Rendering uses the small kustomize loader in conftest.py; where ``kubectl`` is installed
(it is on this project's machine image), its ``kubectl kustomize`` output must be the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from .conftest import by_kind_and_name

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
TARGETS = {
    "base": K8S / "base",
    "dev": K8S / "overlays/dev",
    "prod": K8S / "overlays/prod",
}
# Overlays and what they build on.
OVERLAYS = {"dev": "base", "prod": "base"}
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources: kubernetes-validate has no schema for them; test_autoscaling.py and
# test_alerts.py check their fields instead.
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# Every process serves /metrics (and /healthz, /readyz) on ADMIN_PORT.
ADMIN_PORT = 9100
# Deployment -> (image/service, command, the port its probes use)
APPS = {
    "api": ("api", ["switchyard-api", "serve"], 8080),
    "outbox-relay": ("api", ["switchyard-api", "relay"], 9100),
    "api-grpc": ("api", ["switchyard-api", "grpc"], 9100),
    "batcher": ("batcher", ["switchyard-batcher"], 9100),
    "image-worker": ("image-worker", ["switchyard-image-worker"], 9100),
    "job-worker": ("job-worker", ["switchyard-job-worker"], 9100),
    "health-checker": ("health-checker", ["switchyard-health-checker"], 9100),
}


def _key(resource: dict[str, Any]) -> tuple[str, str, str]:
    meta = resource["metadata"]
    return resource["kind"], meta.get("namespace", ""), meta["name"]


@pytest.fixture(scope="module")
def rendered(helpers: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: helpers.kustomize_build(path) for name, path in TARGETS.items()}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_loader_matches_kubectl_kustomize(
    target: str, rendered: dict[str, list[dict[str, Any]]], helpers: Any
) -> None:
    reference = helpers.kubectl_kustomize(TARGETS[target])
    if reference is None:
        pytest.skip("kubectl is not installed; the loader alone renders the overlays")
    ours = {_key(r): r for r in rendered[target]}
    theirs = {_key(r): r for r in reference}
    assert sorted(ours) == sorted(theirs)
    for key, resource in theirs.items():
        assert ours[key] == resource, f"{key} renders differently"


def test_loader_refuses_what_it_does_not_implement(helpers: Any, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(helpers.KustomizeError):
        helpers.kustomize_build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches: [{path: patch.yaml}]\n"
    )
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "patch.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    with pytest.raises(helpers.KustomizeError, match="matches 0"):
        helpers.kustomize_build(tmp_path)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_manifests_validate(
    target: str, version: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    errors = []
    for resource in rendered[target]:
        if (resource["apiVersion"], resource["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            errors.append(f"{_key(resource)} {path}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_validator_rejects_a_broken_manifest(rendered: dict[str, list[dict[str, Any]]]) -> None:
    import copy

    deployment = copy.deepcopy(by_kind_and_name(rendered["base"])[("Deployment", "batcher")])
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_overlay_patches_target_base_resources(helpers: Any) -> None:
    """Each patch names exactly one resource that the overlay's resources define."""
    for name, parent in OVERLAYS.items():
        directory = TARGETS[name]
        spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
        assert set(spec) <= helpers.SUPPORTED_KUSTOMIZATION_KEYS
        bases = {(directory / e).resolve() for e in spec["resources"] if (directory / e).is_dir()}
        assert bases == {TARGETS[parent].resolve()}, name
        base = helpers.kustomize_build(TARGETS[parent])
        own = [
            doc
            for entry in spec["resources"]
            if (directory / entry).is_file()
            for doc in yaml.safe_load_all((directory / entry).read_text())
            if doc
        ]
        names = {(r["kind"], r["metadata"]["name"]) for r in base + own}
        for patch_entry in spec.get("patches", []):
            for patch in yaml.safe_load_all((directory / patch_entry["path"]).read_text()):
                assert (patch["kind"], patch["metadata"]["name"]) in names, patch_entry


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("deployment", sorted(APPS))
def test_app_deployments(
    target: str, deployment: str, rendered: dict[str, list[dict[str, Any]]], helpers: Any
) -> None:
    index = by_kind_and_name(rendered[target])
    service_name, command, port = APPS[deployment]
    resource = index[("Deployment", deployment)]
    pod = resource["spec"]["template"]
    spec = pod["spec"]
    labels = pod["metadata"]["labels"]
    selector = resource["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()

    (container,) = spec["containers"]
    image_name = container["image"].rpartition(":")[0]
    tag = container["image"].rpartition(":")[2]
    assert image_name.endswith(f"switchyard/{service_name}") and tag and tag != "latest"
    assert container["command"] == command
    assert command[0] in helpers.image_scripts(service_name)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path, f"{deployment} {probe}"
        assert ports[http_get["port"]] == port, f"{deployment} {probe} port"
    assert ports["admin"] == ADMIN_PORT, f"{deployment}: /metrics is on the admin port"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ADMIN_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"

    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
        resources["limits"]
    )
    assert spec["terminationGracePeriodSeconds"] >= 30
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    for each in spec["containers"] + spec.get("initContainers", []):
        security = each["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, each["name"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in each.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{each['name']}: a writable /tmp on a read-only root"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert set(mounts.values()) <= set(volumes)
        assert "emptyDir" in volumes[mounts["/tmp"]]
        config_maps = [s["configMapRef"]["name"] for s in each["envFrom"] if "configMapRef" in s]
        secrets = [s["secretRef"]["name"] for s in each["envFrom"] if "secretRef" in s]
        (config_map,) = config_maps
        assert ("ConfigMap", config_map) in index, f"{deployment}: {config_map} is not rendered"
        assert config_map.startswith("switchyard-config-"), "the generated, content-named one"
        (secret,) = secrets
        if target == "dev":
            assert ("Secret", secret) in index and secret.startswith("switchyard-secrets-")
        else:
            assert secret == helpers.APP_SECRET, "base and prod read the Secret made outside"
    for volume in spec["volumes"]:
        claim = volume.get("persistentVolumeClaim")
        if claim:
            assert ("PersistentVolumeClaim", claim["claimName"]) in index

    (service,) = [
        r
        for r in rendered[target]
        if r["kind"] == "Service" and r["metadata"]["name"] == deployment
    ]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)

    if deployment == "api":
        assert "replicas" not in resource["spec"], "the HPA owns the API's replicas"
        assert container["lifecycle"]["preStop"]


# Every Deployment whose code touches PostgreSQL (all of them: the API and the relay for
# their tables and the outbox, the workers for their sinks, jobs, products and targets).
DATABASE_DEPLOYMENTS = set(APPS)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_database_deployments_wait_for_the_schema(
    target: str, rendered: dict[str, list[dict[str, Any]]], helpers: Any
) -> None:
    """Before its code runs, each such pod has the schema at this image's head revision:
    the API applies it (``db upgrade``, serialised by an advisory lock), every other one
    waits for it (``db wait``), so no record meets a missing table."""
    index = by_kind_and_name(rendered[target])
    for deployment in sorted(DATABASE_DEPLOYMENTS):
        spec = index[("Deployment", deployment)]["spec"]["template"]["spec"]
        (main,) = spec["containers"]
        init = spec.get("initContainers", [])
        assert init, f"{deployment} starts without waiting for the schema"
        first = init[0]
        if deployment == "api":
            assert first["command"] == ["switchyard", "db", "upgrade"]
        else:
            assert first["command"][:3] == ["switchyard", "db", "wait"], deployment
            timeout = first["command"][first["command"].index("--timeout") + 1]
            assert 0 < int(timeout) <= 900, deployment
        assert first["image"] == main["image"], f"{deployment}: the schema of its own code"
        assert first["envFrom"] == main["envFrom"], f"{deployment}: the same database"
        assert "switchyard" in helpers.image_scripts(APPS[deployment][0])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_api_autoscaling_and_disruption_budget(
    target: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    index = by_kind_and_name(rendered[target])
    labels = index[("Deployment", "api")]["spec"]["template"]["metadata"]["labels"]
    hpa = index[("HorizontalPodAutoscaler", "api")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "api",
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = index[("PodDisruptionBudget", "api")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_migration_job(target: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    jobs = [r for r in rendered[target] if r["kind"] == "Job"]
    (job,) = jobs
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["switchyard", "db", "upgrade"]
    assert "/switchyard/api:" in "/" + container["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    api_image = by_kind_and_name(rendered[target])[("Deployment", "api")]["spec"]["template"][
        "spec"
    ]["containers"][0]["image"]
    assert container["image"] == api_image, "migrations come from the API's image"


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("deployment", sorted(APPS))
def test_configuration_loads_into_settings(
    target: str,
    deployment: str,
    rendered: dict[str, list[dict[str, Any]]],
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """ConfigMap + Secret + the container's env: every name is a setting (Settings ignores
    unknown ones), the values validate, and what the service writes is on a volume."""
    index = by_kind_and_name(rendered[target])
    spec = index[("Deployment", deployment)]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = helpers.container_env(rendered[target], deployment)
    for key in env:
        assert helpers.is_setting(key), f"{key} is not a setting"
    for key in (
        "DATABASE_URL",
        "REDIS_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "ADMIN_TOKEN",
        "ADMIN_PORT",
        "LOG_LEVEL",
        "MEDIA_ROOT",
        "SERVICE_NAME",
    ):
        assert env.get(key), key
    assert env["SERVICE_NAME"] == deployment
    settings = helpers.load_settings_from(env, monkeypatch, tmp_path)
    ca = env.get("KAFKA__SSL_CA_LOCATION")
    if ca:
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        (directory,) = [path for path in mounts if ca.startswith(path + "/")]
        assert "secret" in volumes[mounts[directory]], f"{ca} is not a mounted Secret"
    # The container ports and probes checked above assume these values.
    assert settings.admin_port == 9100
    assert (settings.api.host, settings.api.port) == ("0.0.0.0", 8080)

    written = {"image-worker": settings.media_root, "batcher": settings.batcher.jsonl_dir}
    if deployment in written:
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        path = str(written[deployment])
        assert path in mounts, f"{deployment} writes {path}, which is not mounted"
        assert "persistentVolumeClaim" in volumes[mounts[path]], f"{path} must persist"


def test_dev_overlay_runs_its_own_infrastructure(
    rendered: dict[str, list[dict[str, Any]]], helpers: Any
) -> None:
    resources = rendered["dev"]
    index = by_kind_and_name(resources)
    env = helpers.container_env(resources, "api")
    for name, image in (
        ("kafka", "apache/kafka:"),
        ("postgres", "postgres:17"),
        ("redis", "redis:7"),
    ):
        statefulset = index[("StatefulSet", name)]
        assert statefulset["spec"]["replicas"] == 1
        (container,) = statefulset["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith(image)
        assert statefulset["spec"]["volumeClaimTemplates"]
        assert container.get("readinessProbe"), name
        assert ("Service", name) in index
    endpoints = {
        "postgres": urlsplit(env["DATABASE_URL"]),
        "redis": urlsplit(env["REDIS_URL"]),
        "kafka": urlsplit("//" + env["KAFKA_BOOTSTRAP_SERVERS"]),
    }
    for name, url in endpoints.items():
        assert url.hostname == name
        service_ports = {p["port"] for p in index[("Service", name)]["spec"]["ports"]}
        assert url.port in service_ports, f"{name}: {url.port} not in {service_ports}"
    credentials = index[("Secret", "postgres-credentials")]["stringData"]
    assert endpoints["postgres"].username == credentials["POSTGRES_USER"]
    assert endpoints["postgres"].password == credentials["POSTGRES_PASSWORD"]
    assert endpoints["postgres"].path.lstrip("/") == credentials["POSTGRES_DB"]
    assert (
        int(env["KAFKA__REPLICATION_FACTOR"]) <= index[("StatefulSet", "kafka")]["spec"]["replicas"]
    )

    kafka_env = {
        e["name"]: e["value"]
        for e in index[("StatefulSet", "kafka")]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka:{endpoints['kafka'].port}"
    redis_command = index[("StatefulSet", "redis")]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize("target", sorted(OVERLAYS))
def test_overlays_namespace_everything(
    target: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    namespaces = [r["metadata"]["name"] for r in rendered[target] if r["kind"] == "Namespace"]
    assert len(namespaces) == 1
    for resource in rendered[target]:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == namespaces[0], _key(resource)


def test_prod_overlay_pins_images_and_scales(rendered: dict[str, list[dict[str, Any]]]) -> None:
    index = by_kind_and_name(rendered["prod"])
    scaled = {
        r["spec"]["scaleTargetRef"]["name"]: r["spec"]
        for r in rendered["prod"]
        if r["kind"] == "ScaledObject"
    }
    for deployment in APPS:
        spec = index[("Deployment", deployment)]["spec"]
        tag = spec["template"]["spec"]["containers"][0]["image"].rpartition(":")[2]
        assert tag not in ("latest", "dev", "")
        if deployment in scaled:
            assert "replicas" not in spec, f"{deployment}: KEDA owns its replicas"
            assert scaled[deployment]["minReplicaCount"] >= 2, deployment
        elif deployment != "api":
            assert spec["replicas"] >= 2, deployment
    assert index[("HorizontalPodAutoscaler", "api")]["spec"]["minReplicas"] >= 2
    assert not any(r["kind"] == "StatefulSet" for r in rendered["prod"]), (
        "production uses the platform's Kafka, PostgreSQL and Redis"
    )


# Values copied from templates that must never reach a cluster (compared in lower case).
PLACEHOLDERS = ("change-me", "changeme", "change_me", "replace-me", "your-password", "todo")


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("target", ["base", "prod"])
def test_no_secret_value_outside_dev(
    target: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """Applying base or prod never overwrites a real Secret: they render none, no
    setting carries a credential, and no value anywhere is a placeholder."""
    resources = rendered[target]
    assert not [r["metadata"]["name"] for r in resources if r["kind"] == "Secret"]
    for config_map in (r for r in resources if r["kind"] == "ConfigMap"):
        for key, value in config_map["data"].items():
            assert not urlsplit(value).password, f"{key} carries a password"
            assert not any(word in key for word in ("TOKEN", "PASSWORD", "DATABASE_URL"))
    for resource in resources:
        for text in _strings(resource):
            assert not any(p in text.lower() for p in PLACEHOLDERS), (_key(resource), text)


def test_dev_secret_is_generated_and_passes_the_services_checks(
    rendered: dict[str, list[dict[str, Any]]], helpers: Any
) -> None:
    (secret,) = [
        r
        for r in rendered["dev"]
        if r["kind"] == "Secret"
        and "switchyard" in r["metadata"]["name"]
        and r["metadata"]["name"] != "postgres-credentials"
    ]
    values = helpers.secret_values(secret)
    assert set(values) == helpers.external_secret_keys() - {
        "KAFKA__SASL_USERNAME",
        "KAFKA__SASL_PASSWORD",
    }, "dev has the prod Secret's keys, less Kafka's credentials (a plaintext broker)"
    token = values["ADMIN_TOKEN"]
    assert len(token) >= 32 and len(set(token)) > 8, "the services refuse short tokens"
    assert not any(p in token.lower() for p in PLACEHOLDERS)


def test_external_secret_example_names_what_the_pods_read(helpers: Any) -> None:
    keys = helpers.external_secret_keys()
    assert keys == set(helpers.SAMPLE_SECRET_VALUES)
    for key in keys:
        assert helpers.is_setting(key), key
    example = yaml.safe_load(helpers.EXTERNAL_SECRET_EXAMPLE.read_text())
    assert example["spec"]["target"]["name"] == helpers.APP_SECRET


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_grpc_api_serves_its_port(target: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    """`switchyard-api grpc` listens on its default port; the pod and Service expose it."""
    from switchyard_api.grpc import DEFAULT_PORT

    index = by_kind_and_name(rendered[target])
    pod = index[("Deployment", "api-grpc")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--port" not in container.get("args", []), "the default port, as exposed here"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == DEFAULT_PORT
    service = index[("Service", "api-grpc")]
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["targetPort"] == "grpc"]
    assert grpc_port["port"] == DEFAULT_PORT and grpc_port["appProtocol"] == "grpc"
    # Calls in flight get --grace-seconds (20 s) after the 5 s preStop.
    assert pod["terminationGracePeriodSeconds"] >= 5 + 20 + 5


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "the reader knows In only"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _allowed_ports(
    policies: list[dict[str, Any]], labels: dict[str, str], direction: str
) -> set[int | str]:
    """Ports some policy opens for a pod with ``labels`` in ``direction`` ("ingress" or
    "egress"); "*" when a rule opens every port."""
    ports: set[int | str] = set()
    for policy in policies:
        spec = policy["spec"]
        if direction.capitalize() not in spec["policyTypes"]:
            continue
        if not _selects(spec["podSelector"], labels):
            continue
        for rule in spec.get(direction, []):
            if not rule.get("ports"):
                ports.add("*")
            ports.update(p["port"] for p in rule.get("ports", []))
    return ports


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_network_policies_deny_by_default_and_allow_what_each_pod_needs(
    target: str, rendered: dict[str, list[dict[str, Any]]], helpers: Any
) -> None:
    policies = [r for r in rendered[target] if r["kind"] == "NetworkPolicy"]
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny policy"
    for deployment in APPS:
        pod = by_kind_and_name(rendered[target])[("Deployment", deployment)]["spec"]["template"]
        labels = pod["metadata"]["labels"]
        ingress = _allowed_ports(policies, labels, "ingress")
        for container in pod["spec"]["containers"]:
            for port in container["ports"]:
                assert port["containerPort"] in ingress, f"{deployment}: {port} unreachable"
        egress = _allowed_ports(policies, labels, "egress")
        env = helpers.container_env(rendered[target], deployment)
        kafka_port = int(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
        needed = {53, 5432, 6379, kafka_port}
        if deployment in ("image-worker", "job-worker"):
            needed |= {80, 443}  # product images, http.request jobs
        assert "*" in egress or needed <= egress, f"{deployment}: {needed - egress} blocked"


# Pod Security Admission per overlay: prod's pods all meet "restricted"; dev's
# infrastructure images start as root, so dev enforces "baseline" and warns on the rest.
POD_SECURITY = {"prod": "restricted", "dev": "baseline"}


@pytest.mark.parametrize("target", sorted(POD_SECURITY))
def test_namespaces_carry_pod_security_labels(
    target: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    (namespace,) = [r for r in rendered[target] if r["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == POD_SECURITY[target]
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_deployment_has_a_disruption_budget(
    target: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """Node drains evict one replica of a Deployment at a time."""
    budgets = [r["spec"] for r in rendered[target] if r["kind"] == "PodDisruptionBudget"]
    for deployment in APPS:
        labels = by_kind_and_name(rendered[target])[("Deployment", deployment)]["spec"]["template"][
            "metadata"
        ]["labels"]
        covering = [b for b in budgets if b["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, f"{deployment}: {len(covering)} disruption budgets"
        assert covering[0].get("maxUnavailable") == 1, deployment
