"""The PostgreSQL connection budget of production: the most connections the rendered
prod manifests can open at once (every Deployment at its most replicas plus its rollout
surge, times its processes per pod, times the connections each process may hold) stay
within max_connections of the example CloudNativePG cluster, less a reserve for
superusers, the migration and schema-wait init containers, and people with psql."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "deploy/k8s/overlays/prod"
CLUSTER = REPO / "deploy/platform/cloudnative-pg.example.yaml"
# superuser_reserved_connections (3), CloudNativePG's own and its exporter's (5), the
# migrate Job and init containers during a rollout (one each, 10 at once), psql (12).
RESERVED = 30
# SQLAlchemy engines one process creates, by pool: "main" is DATABASE_POOL_SIZE (the
# WorkerContext's or the API's engine), "sink" the batcher's PostgresSink, whose pool is
# max(2, DATABASE_POOL_SIZE // 2) (shared/src/switchyard/sinks/postgres.py). Each may
# open DATABASE_MAX_OVERFLOW more. Plus connections held outside any pool.
ENGINES = {
    "api": ("main",),
    "api-grpc": ("main",),
    "outbox-relay": ("main",),
    "batcher": ("main", "sink"),
    "image-worker": ("main",),
    "job-worker": ("main",),
    "health-checker": ("main",),
}
UNPOOLED = {"health-checker": 1}  # its LISTEN connection, detached from the pool


@pytest.fixture(scope="module")
def prod(helpers: Any) -> list[dict[str, Any]]:
    return helpers.kustomize_build(PROD)  # type: ignore[no-any-return]


def max_connections() -> int:
    cluster = yaml.safe_load(CLUSTER.read_text())
    return int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])


def most_pods(resources: list[dict[str, Any]], deployment: dict[str, Any]) -> int:
    """Replicas at most (the autoscaler's maximum, else the fixed count) plus the pods a
    rolling update adds on top of them."""
    name = deployment["metadata"]["name"]
    ceilings = [
        r["spec"]["maxReplicas"]
        for r in resources
        if r["kind"] == "HorizontalPodAutoscaler" and r["spec"]["scaleTargetRef"]["name"] == name
    ] + [
        r["spec"]["maxReplicaCount"]
        for r in resources
        if r["kind"] == "ScaledObject" and r["spec"]["scaleTargetRef"]["name"] == name
    ]
    replicas = max(ceilings) if ceilings else deployment["spec"].get("replicas", 1)
    surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert isinstance(surge, int), f"{name}: a percentage surge is not counted here"
    return int(replicas) + surge


def connections_per_process(env: dict[str, str], engines: tuple[str, ...]) -> int:
    pool = int(env["DATABASE_POOL_SIZE"])
    overflow = int(env["DATABASE_MAX_OVERFLOW"])
    pools = {"main": pool, "sink": max(2, pool // 2)}
    return sum(pools[engine] + overflow for engine in engines)


def budget_table(resources: list[dict[str, Any]], helpers: Any) -> dict[str, int]:
    table: dict[str, int] = {}
    for deployment in (r for r in resources if r["kind"] == "Deployment"):
        name = deployment["metadata"]["name"]
        env = helpers.container_env(resources, name)
        for key in ("DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW"):
            assert key in env, f"{name}: {key} is left to its default, outside the budget"
        processes = int(env["API__WORKERS"]) if name == "api" else 1
        per_process = connections_per_process(env, ENGINES[name]) + UNPOOLED.get(name, 0)
        table[name] = most_pods(resources, deployment) * processes * per_process
    return table


def test_prod_fits_the_connection_budget(prod: list[dict[str, Any]], helpers: Any) -> None:
    table = budget_table(prod, helpers)
    assert set(table) == set(ENGINES), "a Deployment this budget does not know"
    allowed = max_connections() - RESERVED
    assert sum(table.values()) <= allowed, f"{sum(table.values())} > {allowed}: {table}"


def test_the_budget_counts_what_the_autoscalers_allow(
    prod: list[dict[str, Any]], helpers: Any
) -> None:
    """Raising an autoscaler's maximum past the budget fails the check above."""
    import copy

    mutated = copy.deepcopy(prod)
    hpa = next(r for r in mutated if r["kind"] == "HorizontalPodAutoscaler")
    before = sum(budget_table(mutated, helpers).values())
    hpa["spec"]["maxReplicas"] += 20
    after = sum(budget_table(mutated, helpers).values())
    assert after - before == 20 * 2 * connections_per_process(
        helpers.container_env(prod, "api"), ENGINES["api"]
    )
    assert after > max_connections() - RESERVED
