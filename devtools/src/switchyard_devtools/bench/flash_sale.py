"""Flash sale: thousands of users racing for one coupon, per claim strategy, same run.

Side by side, with both servers up and measured in turn (several rounds): ours
(``COUPONS__STRATEGY=fast``, the default), the least claim that keeps the same contract
(:mod:`switchyard_devtools.bench.coupon_minimum`) and our ``GET /healthz``; then the plain
PostgreSQL strategies, one API each. Same gunicorn shape, clients, scenarios and seeded
request order for all. Every run is checked, not just timed: successes = min(stock,
distinct users), no claimant twice, remaining_amount = stock - successes, and each 409 and
400 accounted for (a winner's other requests are all 409, a loser's are all 400, in any
serial order).
"""

from __future__ import annotations

import json
import os
import random
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from switchyard.config import Settings
from switchyard_devtools.bench.flash_sale_report import report
from switchyard_devtools.bench.stack import bench_settings, script, service
from switchyard_devtools.load.generator import LoadResult, Request, run_load
from switchyard_devtools.stack.processes import free_port

NAME = "flash_sale"
BASELINES = ("for_update", "conditional")
MINIMUM = "minimum"
CONCURRENCY = 100
ROUNDS = 3
HEALTHZ_REQUESTS = 20_000
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


def _measure(
    base: str, strategy: str, scenario: Scenario, claims_at: str | None = None, tag: str = ""
) -> dict[str, Any]:
    """One scenario on a fresh coupon, created and read through ``base`` (our API) and
    claimed through ``claims_at`` (ours or the minimum, same database)."""
    name = f"{scenario.name}_{strategy}{tag}"
    _call("POST", f"{base}/api/coupons", {"name": name, "amount": scenario.stock})
    requests = _claims(claims_at or base, name, scenario, seed=4)
    load = os.getloadavg()[0]
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
        "load": load,
    }


def _healthz(base: str, scenario: Scenario) -> dict[str, Any]:
    """Our cheapest endpoint, next to the claims of ``scenario`` in the same round."""
    requests = [Request("GET", f"{base}/healthz", headers=())] * HEALTHZ_REQUESTS
    load = os.getloadavg()[0]
    result = run_load(requests, CONCURRENCY, total=len(requests), label="GET /healthz")
    problems = [] if set(result.statuses) == {200} else [f"statuses {dict(result.statuses)}"]
    return {
        "strategy": "GET /healthz",
        "scenario": scenario,
        "result": result,
        "problems": problems,
        "load": load,
    }


def _warm_up(base: str, name: str, claims_at: str | None = None) -> None:
    """Fill connection pools and import paths, so the first strategy is not penalised."""
    _call("POST", f"{base}/api/coupons", {"name": name, "amount": 1_000})
    requests = _claims(claims_at or base, name, Scenario(name, 500, 2, 1_000, ""), seed=1)
    run_load(requests, CONCURRENCY, show_progress=False)


def _api_env(port: int, strategy: str) -> dict[str, str]:
    return {
        "API__HOST": "127.0.0.1",
        "API__PORT": str(port),
        "API__WORKERS": str(WORKERS),
        "API__THREADS": str(THREADS),
        "COUPONS__STRATEGY": strategy,
    }


def _baselines(settings: Settings, workdir: Path) -> list[dict[str, Any]]:
    """The plain PostgreSQL strategies, one API each (they are far slower: one run)."""
    rows: list[dict[str, Any]] = []
    for strategy in BASELINES:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with service(
            [script("switchyard-api"), "serve"],
            settings,
            _api_env(port, strategy),
            ready_url=f"{base}/readyz",
            log=workdir / f"api-{strategy}.log",
        ):
            _warm_up(base, f"warm_up_{strategy}")
            rows.extend(_measure(base, strategy, scenario) for scenario in SCENARIOS)
    return rows


def side_by_side(settings: Settings, workdir: Path, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    """Ours (``fast``), the minimum and our ``GET /healthz``, both servers up at once and
    measured in turn, ``rounds`` times, so each ratio compares neighbours in time."""
    ours_port, minimum_port = free_port(), free_port()
    ours, minimum = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{minimum_port}"
    minimum_argv = [
        script("gunicorn"),
        "-c",
        "python:switchyard_api.gunicorn_conf",
        "switchyard_devtools.bench.coupon_minimum:minimum_app()",
    ]
    rows: list[dict[str, Any]] = []
    with (
        service(
            [script("switchyard-api"), "serve"],
            settings,
            _api_env(ours_port, "fast"),
            ready_url=f"{ours}/readyz",
            log=workdir / "api-fast.log",
        ),
        service(
            minimum_argv,
            settings,
            _api_env(minimum_port, "fast"),
            ready_url=f"{minimum}/readyz",
            log=workdir / "minimum.log",
        ),
    ):
        _warm_up(ours, "warm_up_fast")
        _warm_up(ours, "warm_up_minimum", claims_at=minimum)
        run_load([Request("GET", f"{ours}/healthz", headers=())] * 2_000, 100, show_progress=False)
        for round_ in range(1, rounds + 1):
            tag = f"_{round_}"
            for scenario in SCENARIOS if round_ == 1 else SCENARIOS[:1]:
                measures: list[Callable[[], dict[str, Any]]] = [
                    partial(_healthz, ours, scenario),
                    partial(_measure, ours, "fast", scenario, tag=tag),
                    partial(_measure, ours, MINIMUM, scenario, claims_at=minimum, tag=tag),
                ]
                # Each round starts with a different one: no side always runs first.
                turn = (round_ - 1) % len(measures)
                for measure in measures[turn:] + measures[:turn]:
                    rows.append({**measure(), "round": round_})
    return rows


def run(workdir: Path) -> str:
    with bench_settings(workdir) as settings:
        rows = side_by_side(settings, workdir)
        rows += _baselines(settings, workdir)
    return report(rows)
