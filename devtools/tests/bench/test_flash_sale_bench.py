"""The flash-sale benchmark: registered with `make bench`, its report states the targets
and same-round ratios, and its yardstick (the coupon minimum) really keeps SPEC section 7
under concurrency: the status codes, one claim per user, no oversell, each claim's event
in the outbox."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from switchyard.config import Settings
from switchyard_devtools.bench import BENCHMARKS, flash_sale
from switchyard_devtools.bench.coupon_minimum import minimum_app
from switchyard_devtools.bench.flash_sale_report import report
from switchyard_devtools.load.generator import LoadResult


def test_registered() -> None:
    assert "flash_sale" in BENCHMARKS and flash_sale.NAME == "flash_sale"


def _result(requests: int) -> LoadResult:
    result = LoadResult(started=0.0, finished=1.0)
    result.latencies = [0.010] * requests
    result.statuses = Counter({200: requests})
    return result


def _row(strategy: str, requests: int, round_: int | None, scenario: Any) -> dict[str, Any]:
    row = {
        "strategy": strategy,
        "scenario": scenario,
        "result": _result(requests),
        "problems": [],
        "load": 2.5,
        "coupon": {"remaining_amount": 0, "claimed_by": ["u"]},
    }
    return row if round_ is None else {**row, "round": round_}


def test_report_gives_same_round_ratios_and_the_targets() -> None:
    hot, all_win = flash_sale.SCENARIOS
    rows = [
        _row("GET /healthz", 1_000, 1, hot),
        _row("fast", 2_200, 1, hot),
        _row("minimum", 1_100, 1, hot),
        _row("GET /healthz", 5_000, 2, hot),
        _row("fast", 3_000, 2, hot),
        _row("minimum", 1_000, 2, hot),
        _row("GET /healthz", 1_000, 1, all_win),
        _row("fast", 500, 1, all_win),
        _row("minimum", 250, 1, all_win),
        _row("for_update", 200, None, hot),
        _row("for_update", 100, None, all_win),
    ]
    text = report(rows)
    assert "| 1 | hot | 2,200 | 1,100 | 1,000 | 200% | 220% |" in text
    assert "| 2 | hot | 3,000 | 1,000 | 5,000 | 300% | 60% |" in text
    # Medians over rounds: 2,600 claims/s, (220 % + 60 %) / 2 of GET /healthz.
    assert "ours 2,600 claims/s (target ≥ 2,000: met), 140% of `GET /healthz`" in text
    assert "(target ≥ 90%: met)" in text
    assert "`hot` 11.0x, `all_win` 5.0x" in text
    assert "| 1 | hot | fast | 2,200 | 10.0 | 10.0 | 10.0 |" in text


def test_the_minimum_keeps_section_7(settings: Settings, engine: sa.Engine) -> None:
    client = minimum_app(settings).test_client()
    name, missing = f"MIN_{uuid.uuid4().hex[:8]}", f"MIN_NONE_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO coupons (name, amount, remaining_amount) VALUES (:n, 5, 5)"),
            {"n": name},
        )

    def claim(user: str, coupon: str = name) -> int:
        body = json.dumps({"user_id": user, "coupon_name": coupon})
        return int(client.post("/api/coupons/claim", data=body).status_code)

    assert claim("someone", missing) == 404
    assert client.post("/api/coupons/claim", data=b"{").status_code == 400
    assert client.post("/api/coupons/claim", data=b'{"user_id": "x"}').status_code == 400
    users = [f"user_{n}" for n in range(40)] * 2
    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(claim, users))
    with engine.connect() as connection:
        winners = list(
            connection.execute(
                sa.text("SELECT user_id FROM claims WHERE coupon_name = :n"), {"n": name}
            ).scalars()
        )
        remaining = connection.execute(
            sa.text("SELECT remaining_amount FROM coupons WHERE name = :n"), {"n": name}
        ).scalar_one()
        events = connection.execute(
            sa.text("SELECT count(*) FROM outbox WHERE key = :n"), {"n": name}
        ).scalar_one()
    assert statuses == Counter({200: 5, 409: 5, 400: 70})
    assert len(set(winners)) == 5 and remaining == 0 and events == 5
    assert all(claim(user) == 409 for user in winners)
    assert claim("late") == 400
