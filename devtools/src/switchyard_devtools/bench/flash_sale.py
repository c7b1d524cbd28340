"""Flash sale: thousands of users racing for one coupon, per claim strategy, same run.

The API runs once per ``COUPONS__STRATEGY`` (same workers, threads and machine), and each
faces the same scenarios with the same seeded request order. Every run is checked, not
just timed: successes = min(stock, distinct users), no claimant twice, remaining_amount =
stock - successes, and each 409 and 400 accounted for (a winner's other requests are all
409, a loser's are all 400, in any serial order).
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard_devtools.bench.stack import bench_settings, script, service
from switchyard_devtools.load.generator import LoadResult, Request, run_load
from switchyard_devtools.stack.processes import free_port

NAME = "flash_sale"
STRATEGIES = ("for_update", "conditional", "fast")
CONCURRENCY = 100
WORKERS = 2
# Enough for each worker to hold its half of the clients at once: the group commit's
# batches can only be as large as the requests a worker has in hand.
THREADS = 64


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    requests_per_user: int
    stock: int
    what: str

    @property
    def requests(self) -> int:
        return self.users * self.requests_per_user


SCENARIOS = (
    Scenario(
        "hot",
        5_000,
        4,
        1_000,
        "one coupon, stock 1,000; 5,000 users send 4 claims each (20,000), shuffled",
    ),
    Scenario(
        "all_win",
        5_000,
        1,
        5_000,
        "one coupon, stock 5,000; 5,000 users claim once: every claim is a write",
    ),
)


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())  # type: ignore[no-any-return]


def _claims(base: str, coupon: str, scenario: Scenario, seed: int) -> list[Request]:
    users = [f"user_{n}" for n in range(scenario.users)] * scenario.requests_per_user
    random.Random(seed).shuffle(users)
    return [
        Request(
            "POST",
            f"{base}/api/coupons/claim",
            json.dumps({"user_id": user, "coupon_name": coupon}).encode(),
        )
        for user in users
    ]


def _check(scenario: Scenario, result: LoadResult, coupon: dict[str, Any]) -> list[str]:
    """What differs from the only answers PostgreSQL could give; empty when all is right."""
    winners = coupon["claimed_by"]
    expected = Counter(
        {
            200: min(scenario.stock, scenario.users),
            409: len(winners) * (scenario.requests_per_user - 1),
            400: (scenario.users - len(winners)) * scenario.requests_per_user,
        }
    )
    problems = []
    if +expected != +result.statuses:
        problems.append(f"statuses {dict(result.statuses)} != {dict(+expected)}")
    if len(winners) != expected[200] or len(set(winners)) != len(winners):
        problems.append(f"claimed_by has {len(winners)} ({len(set(winners))} distinct)")
    if coupon["remaining_amount"] != scenario.stock - len(winners):
        problems.append(f"remaining_amount {coupon['remaining_amount']}")
    return problems


def _measure(base: str, strategy: str, scenario: Scenario) -> dict[str, Any]:
    name = f"{scenario.name}_{strategy}"
    _call("POST", f"{base}/api/coupons", {"name": name, "amount": scenario.stock})
    requests = _claims(base, name, scenario, seed=4)
    result = run_load(
        requests,
        CONCURRENCY,
        total=len(requests),
        accepted=lambda s: s == 200,
        label=f"{strategy} {scenario.name}",
    )
    coupon = _call("GET", f"{base}/api/coupons/{name}")
    return {
        "strategy": strategy,
        "scenario": scenario,
        "result": result,
        "coupon": coupon,
        "problems": _check(scenario, result, coupon),
    }


def _warm_up(base: str, name: str) -> None:
    """Fill connection pools and import paths, so the first strategy is not penalised."""
    _call("POST", f"{base}/api/coupons", {"name": name, "amount": 1_000})
    requests = _claims(base, name, Scenario(name, 500, 2, 1_000, ""), seed=1)
    run_load(requests, CONCURRENCY, show_progress=False)


def run(workdir: Path) -> str:
    rows: list[dict[str, Any]] = []
    with bench_settings(workdir) as settings:
        for strategy in STRATEGIES:
            port = free_port()
            env = {
                "API__HOST": "127.0.0.1",
                "API__PORT": str(port),
                "API__WORKERS": str(WORKERS),
                "API__THREADS": str(THREADS),
                "COUPONS__STRATEGY": strategy,
            }
            base = f"http://127.0.0.1:{port}"
            with service(
                [script("switchyard-api"), "serve"],
                settings,
                env,
                ready_url=f"{base}/readyz",
                log=workdir / f"api-{strategy}.log",
            ):
                _warm_up(base, f"warm_up_{strategy}")
                rows.extend(_measure(base, strategy, scenario) for scenario in SCENARIOS)
    return _report(rows)


def _report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## Flash sale: one hot coupon",
        "",
        f"{CONCURRENCY} concurrent clients (asyncio/aiohttp) against `switchyard-api serve` "
        f"with {WORKERS} gunicorn workers of {THREADS} threads; one API per "
        "`COUPONS__STRATEGY`, same scenarios and request order. `for_update`: a transaction "
        "per claim behind `SELECT ... FOR UPDATE`; `conditional`: insert the claim, then "
        "`UPDATE ... WHERE remaining_amount > 0`; `fast`: the gate of committed facts "
        "(process memory, then Redis), then per-coupon group commit through one "
        "`claim_coupon_batch()` call per batch. claims/s counts every answered claim "
        "(200, 409 and 400 alike); latencies are per request, as the clients saw them.",
        "",
        *(f"* `{s.name}`: {s.what}." for s in SCENARIOS),
        "",
        "| scenario | strategy | claims/s | p50 ms | p95 ms | p99 ms "
        "| 200 / 409 / 400 | remaining | claimed_by | check |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for scenario in SCENARIOS:
        for row in (r for r in rows if r["scenario"] is scenario):
            result: LoadResult = row["result"]
            statuses = result.statuses
            others = sum(n for s, n in statuses.items() if s not in (200, 400, 409))
            lines.append(
                f"| {scenario.name} | {row['strategy']} "
                f"| {result.requests / result.elapsed:,.0f} "
                f"| {result.percentile(50) * 1000:.1f} | {result.percentile(95) * 1000:.1f} "
                f"| {result.percentile(99) * 1000:.1f} "
                f"| {statuses[200]} / {statuses[409]} / {statuses[400]}"
                f"{f' (+{others} other)' if others else ''} "
                f"| {row['coupon']['remaining_amount']} | {len(row['coupon']['claimed_by'])} "
                f"| {'ok' if not row['problems'] else '; '.join(row['problems'])} |"
            )
    lines += ["", _speedups(rows)]
    return "\n".join(lines)


def _speedups(rows: list[dict[str, Any]]) -> str:
    def rate(strategy: str, scenario: Scenario) -> float:
        result: LoadResult = next(
            r["result"] for r in rows if r["strategy"] == strategy and r["scenario"] is scenario
        )
        return result.requests / result.elapsed

    parts = [f"`{s.name}` {rate('fast', s) / rate('for_update', s):.1f}x" for s in SCENARIOS]
    return f"`fast` over the `for_update` baseline, claims/s: {', '.join(parts)}."
